"""The OpenAPI document checked into docs/ is the one the gateway app generates."""

from __future__ import annotations

import json

from gateway.openapi import SPEC_FILE, openapi_document


def test_checked_in_openapi_document_matches_the_app() -> None:
    spec = openapi_document()
    assert json.loads(SPEC_FILE.read_text()) == spec, "run `python -m gateway.openapi` and commit the result"
    paths = spec["paths"]
    assert set(paths) == {"/v1/sensor-blocks", "/v1/records", "/v1/fit", "/v1/health", "/metrics"}
    blocks = paths["/v1/sensor-blocks"]["post"]
    assert "application/vnd.gluteflow.frames" in blocks["requestBody"]["content"]
    assert {"200", "400", "401", "403", "413", "415", "429", "503"} <= set(blocks["responses"])
    assert blocks["security"] == [{"HTTPBearer": []}]
