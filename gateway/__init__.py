"""The device ingest gateway: HTTP front door for a wearable fleet, in front of the validating Publisher.

``app`` (routes, limits, refusals), ``committer`` (group commits to Kafka and their guarantee),
``credentials`` (device tokens, stored as salted scrypt hashes), ``wire`` (the framed request body),
``metrics`` (Prometheus), ``server`` (uvicorn), ``client`` (send events through a gateway).
"""
