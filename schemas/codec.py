"""Binary encoding of gluteflow events (Avro body behind a 4-byte versioned header).

``encode(event)`` writes the latest schema version of the event's kind;
``decode(data)`` reads any shipped version and returns the current dataclass.
Errors raise :class:`DecodeError` with a reason code, so callers can dead-letter.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro
import numpy as np

from schemas.events import (
    EVENT_TYPES,
    DeadLetter,
    Event,
    RunnerProfile,
    SensorBlock,
    SessionMarker,
    WatchRecord,
)
from schemas.registry import (
    HEADER_LEN,
    KIND_CODES,
    KINDS_BY_CODE,
    MAGIC,
    latest_version,
    parsed_schema,
    versions,
)


class DecodeError(ValueError):
    """Bytes that are not a readable gluteflow event. ``reason`` is a dead-letter reason code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def header(kind: str, version: int) -> bytes:
    return MAGIC + bytes((KIND_CODES[kind], version))


def read_header(data: bytes) -> tuple[str, int]:
    """Return (kind, version) of an encoded message or raise DecodeError."""
    if len(data) < HEADER_LEN or data[:2] != MAGIC:
        raise DecodeError("bad_header", f"not a gluteflow message (first bytes {bytes(data[:4])!r})")
    kind = KINDS_BY_CODE.get(data[2])
    if kind is None:
        raise DecodeError("unknown_schema", f"unknown kind code {data[2]}")
    try:
        known = versions(kind)
    except KeyError:  # a kind code reserved in the registry whose schema is not shipped
        known = ()
    if data[3] not in known:
        raise DecodeError("unknown_schema", f"{kind} has no schema version {data[3]}")
    return kind, data[3]


def encode_record(kind: str, record: dict[str, Any], version: int | None = None) -> bytes:
    """Encode a plain Avro record dict of ``kind`` with the given (default: latest) writer version."""
    version = version or latest_version(kind)
    buf = io.BytesIO()
    buf.write(header(kind, version))
    fastavro.schemaless_writer(buf, parsed_schema(kind, version), record)
    return buf.getvalue()


def decode_record(data: bytes) -> tuple[str, int, dict[str, Any]]:
    """Decode to (kind, writer version, record dict resolved to the latest schema)."""
    kind, version = read_header(data)
    latest = latest_version(kind)
    try:
        record = fastavro.schemaless_reader(
            io.BytesIO(memoryview(data)[HEADER_LEN:]),
            parsed_schema(kind, version),
            parsed_schema(kind, latest) if version != latest else None,
        )
    except Exception as exc:  # fastavro raises many types on truncated/corrupt bodies
        raise DecodeError("decode_error", f"{kind} v{version}: {type(exc).__name__}: {exc}") from exc
    return kind, version, record


def _sensor_block_to_record(block: SensorBlock) -> dict[str, Any]:
    rec = block.header_dict()
    rec["channels"] = [
        {"name": name, "unit": block.units[name], "data": np.ascontiguousarray(arr, dtype="<f4").tobytes()}
        for name, arr in block.channels.items()
    ]
    return rec


def _sensor_block_from_record(rec: dict[str, Any], version: int) -> SensorBlock:
    channels: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for ch in rec.pop("channels"):
        if len(ch["data"]) % 4:
            raise DecodeError(
                "length_mismatch", f"channel {ch['name']} has {len(ch['data'])} bytes, not float32s"
            )
        channels[ch["name"]] = np.frombuffer(ch["data"], dtype="<f4")
        units[ch["name"]] = ch["unit"]
    return SensorBlock(channels=channels, units=units, schema_version=version, **rec)


def encode(event: Event) -> bytes:
    """Encode any event dataclass with the latest schema of its kind."""
    if isinstance(event, SensorBlock):
        return encode_record("sensor_block", _sensor_block_to_record(event))
    return encode_record(event.KIND, event.to_record())


def decode(data: bytes) -> Event:
    """Decode bytes produced by :func:`encode` (any shipped version) into its dataclass."""
    kind, version, rec = decode_record(data)
    if kind == "sensor_block":
        return _sensor_block_from_record(rec, version)
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise DecodeError("unknown_schema", f"no dataclass for kind {kind}")
    return cls.from_record(rec, version)


__all__ = [
    "DecodeError",
    "DeadLetter",
    "RunnerProfile",
    "SensorBlock",
    "SessionMarker",
    "WatchRecord",
    "decode",
    "decode_record",
    "encode",
    "encode_record",
    "read_header",
]
