"""Great Expectations suites guarding each lake layer (strides, daily, injury_risk) and their Data Docs.

Each suite module exposes ``SUITE_NAME``, ``expectations() -> list[Expectation]`` and a loader for the
frame it validates; :mod:`pipelines.quality.data_docs` runs them and writes Data Docs under
``<data>/quality/data_docs/``.
"""
