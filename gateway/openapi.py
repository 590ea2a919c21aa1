"""The gateway's OpenAPI document, generated from the app: ``python -m gateway.openapi`` rewrites
docs/gateway-openapi.json (tests/test_gateway_openapi.py checks the file matches the app)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SPEC_FILE = Path(__file__).resolve().parents[1] / "docs" / "gateway-openapi.json"


def openapi_document() -> dict:
    """The OpenAPI document of the routes (built without Kafka or a device store: nothing is served)."""
    from gateway.app import Gateway, GatewayConfig, create_app

    gw = Gateway(GatewayConfig(bootstrap="-"), publisher=None, store=None)
    try:
        return create_app(gw).openapi()
    finally:
        gw.committer.close()


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else SPEC_FILE
    out.write_text(render())
    print(f"wrote {out}")
