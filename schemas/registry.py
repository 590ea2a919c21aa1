"""Schema registry: every versioned Avro schema shipped in ``schemas/avro``.

Wire format of every gluteflow Kafka message value::

    b"GF" | kind (1 byte) | version (1 byte) | Avro binary body (schemaless)

The header names the *writer* schema; readers resolve it to the latest version of that
kind with Avro's schema-resolution rules, so a message of an older version still decodes.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

AVRO_DIR = Path(__file__).with_name("avro")
MAGIC = b"GF"
HEADER_LEN = 4

#: kind name -> kind code in the header
KIND_CODES: dict[str, int] = {
    "sensor_block": 1,
    "watch_record": 2,
    "session_marker": 3,
    "runner_profile": 4,
    "dead_letter": 5,
    "stride": 6,
}
KINDS_BY_CODE: dict[int, str] = {code: kind for kind, code in KIND_CODES.items()}


def _strip_logical_types(node: Any) -> Any:
    """Keep timestamps as int microseconds in Python (the .avsc files still document them)."""
    if isinstance(node, dict):
        return {k: _strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical_types(v) for v in node]
    return node


@cache
def versions(kind: str) -> tuple[int, ...]:
    """All shipped versions of ``kind``, ascending."""
    found = sorted(int(p.name.split(".v")[1].split(".")[0]) for p in AVRO_DIR.glob(f"{kind}.v*.avsc"))
    if not found:
        raise KeyError(f"no schema for kind {kind!r}")
    return tuple(found)


def latest_version(kind: str) -> int:
    return versions(kind)[-1]


@cache
def raw_schema(kind: str, version: int) -> dict:
    """The .avsc document as shipped (with logical types)."""
    return json.loads((AVRO_DIR / f"{kind}.v{version}.avsc").read_text())


@cache
def parsed_schema(kind: str, version: int) -> dict:
    """fastavro-parsed schema; timestamps are plain ints (microseconds since the epoch, UTC)."""
    return fastavro.parse_schema(_strip_logical_types(raw_schema(kind, version)))


def field_names(kind: str, version: int | None = None) -> list[str]:
    return [f["name"] for f in raw_schema(kind, version or latest_version(kind))["fields"]]
