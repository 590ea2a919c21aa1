"""Binary encoding of gluteflow events (Avro body behind a 4-byte versioned header).

``encode(event)`` writes the latest schema version of the event's kind;
``decode(data)`` reads any shipped version and returns the current dataclass.
Errors raise :class:`DecodeError` with a reason code, so callers can dead-letter.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
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
    try:
        return _HEADERS[(kind, version)]
    except KeyError:
        h = _HEADERS[(kind, version)] = MAGIC + bytes((KIND_CODES[kind], version))
        return h


_HEADERS: dict[tuple[str, int], bytes] = {}


def read_header(data: bytes) -> tuple[str, int]:
    """Return (kind, version) of an encoded message or raise DecodeError."""
    if data is None:
        raise DecodeError("bad_header", "null message value (a tombstone), not a gluteflow message")
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


# --- fast path ------------------------------------------------------------------------------------
# ``fastavro.schemaless_writer`` re-parses the schema on every call (~60 us even for a tiny record),
# which dominated producing. Each (kind, version) schema is compiled once into a closure that writes the
# same Avro binary encoding. The closures accept only the exact Python types the events use and raise
# ``_NotFast`` on anything else, in which case the record goes through fastavro unchanged (so errors and
# edge cases behave exactly as before). Checked byte for byte against fastavro on simulated fleets plus
# edge cases (ints in double fields, bools, NaN, maps, non-ASCII strings, dead letters).


class _NotFast(Exception):
    """Value outside the fast path's exact types: use fastavro instead."""


_pack_double = struct.Struct("<d").pack
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1
_SMALL_VARINTS = [bytes([n]) for n in range(128)]  # zigzag values 0..127 are one byte


def _varint_zigzag(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    if z < 128:
        return _SMALL_VARINTS[z]
    out = bytearray()
    while z >= 128:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_Writer = Callable[[Any, list], None]


def _w_null(v: Any, out: list) -> None:
    if v is not None:
        raise _NotFast


def _w_boolean(v: Any, out: list) -> None:
    if type(v) is not bool:
        raise _NotFast
    out.append(b"\x01" if v else b"\x00")


def _w_long(v: Any, out: list) -> None:
    if type(v) is not int or not _LONG_MIN <= v <= _LONG_MAX:
        raise _NotFast
    out.append(_varint_zigzag(v))


def _w_int(v: Any, out: list) -> None:
    if type(v) is not int or not _INT_MIN <= v <= _INT_MAX:
        raise _NotFast
    out.append(_varint_zigzag(v))


def _w_double(v: Any, out: list) -> None:
    t = type(v)
    if t is float:
        out.append(_pack_double(v))
    elif t is int and -(1 << 53) <= v <= (1 << 53):
        out.append(_pack_double(float(v)))
    else:
        raise _NotFast


_STRINGS: dict[str, bytes] = {}  # encoded (length + UTF-8) ids, names, units: they repeat constantly
_STRINGS_MAX = 65536


def _encoded_string(v: str) -> bytes:
    try:
        return _STRINGS[v]
    except KeyError:
        pass
    b = v.encode()
    enc = _varint_zigzag(len(b)) + b
    if len(b) <= 256:
        if len(_STRINGS) >= _STRINGS_MAX:
            _STRINGS.clear()
        _STRINGS[v] = enc
    return enc


def _w_string(v: Any, out: list) -> None:
    if type(v) is not str:
        raise _NotFast
    out.append(_encoded_string(v))


def _w_bytes(v: Any, out: list) -> None:
    if type(v) is not bytes:
        raise _NotFast
    out.append(_varint_zigzag(len(v)))
    out.append(v)


_PRIMITIVE_WRITERS: dict[str, _Writer] = {
    "null": _w_null,
    "boolean": _w_boolean,
    "int": _w_int,
    "long": _w_long,
    "double": _w_double,
    "string": _w_string,
    "bytes": _w_bytes,
}


def _compile(schema: Any) -> _Writer:
    """Writer closure for a parsed (fastavro) schema node; raises _NotFast for unsupported schemas."""
    if isinstance(schema, str):
        if schema in _PRIMITIVE_WRITERS:
            return _PRIMITIVE_WRITERS[schema]
        raise _NotFast  # named-type reference: not used by gluteflow schemas
    if isinstance(schema, list):  # union: only [null, T] / [T, null] with a simple T
        if len(schema) != 2 or "null" not in schema:
            raise _NotFast
        null_first = schema[0] == "null"
        other = _compile(schema[1] if null_first else schema[0])
        idx_null = b"\x00" if null_first else b"\x02"
        idx_other = b"\x02" if null_first else b"\x00"

        def w_union(v: Any, out: list) -> None:
            if v is None:
                out.append(idx_null)
            else:
                out.append(idx_other)
                other(v, out)

        return w_union
    t = schema.get("type")
    if t in _PRIMITIVE_WRITERS and not schema.get("logicalType"):
        return _PRIMITIVE_WRITERS[t]
    if t == "enum":
        index = {sym: _varint_zigzag(i) for i, sym in enumerate(schema["symbols"])}

        def w_enum(v: Any, out: list) -> None:
            if type(v) is not str or v not in index:
                raise _NotFast
            out.append(index[v])

        return w_enum
    if t == "array":
        item = _compile(schema["items"])

        def w_array(v: Any, out: list) -> None:
            if type(v) is not list:
                raise _NotFast
            if v:
                out.append(_varint_zigzag(len(v)))
                for x in v:
                    item(x, out)
            out.append(b"\x00")

        return w_array
    if t == "map":
        value = _compile(schema["values"])

        def w_map(v: Any, out: list) -> None:
            if type(v) is not dict:
                raise _NotFast
            if v:
                out.append(_varint_zigzag(len(v)))
                for k, x in v.items():
                    _w_string(k, out)
                    value(x, out)
            out.append(b"\x00")

        return w_map
    if t == "record":
        fields = [(f["name"], _compile(f["type"])) for f in schema["fields"]]

        def w_record(v: Any, out: list) -> None:
            if type(v) is not dict:
                raise _NotFast
            try:
                for name, w in fields:
                    w(v[name], out)
            except KeyError:  # missing field: fastavro applies defaults / raises
                raise _NotFast from None

        return w_record
    raise _NotFast


_FAST_WRITERS: dict[tuple[str, int], _Writer | None] = {}


def _fast_writer(kind: str, version: int) -> _Writer | None:
    try:
        return _FAST_WRITERS[(kind, version)]
    except KeyError:
        pass
    try:
        w: _Writer | None = _compile(parsed_schema(kind, version))
    except _NotFast:
        w = None
    _FAST_WRITERS[(kind, version)] = w
    return w


def _encode_fastavro(kind: str, record: dict[str, Any], version: int) -> bytes:
    buf = io.BytesIO()
    buf.write(header(kind, version))
    fastavro.schemaless_writer(buf, parsed_schema(kind, version), record)
    return buf.getvalue()


def encode_record(kind: str, record: dict[str, Any], version: int | None = None) -> bytes:
    """Encode a plain Avro record dict of ``kind`` with the given (default: latest) writer version."""
    version = version or latest_version(kind)
    writer = _fast_writer(kind, version)
    if writer is not None:
        out = [header(kind, version)]
        try:
            writer(record, out)
        except _NotFast:
            pass
        else:
            return b"".join(out)
    return _encode_fastavro(kind, record, version)


def decode_record(data: bytes) -> tuple[str, int, dict[str, Any]]:
    """Decode to (kind, writer version, record dict resolved to the latest schema)."""
    kind, version = read_header(data)
    latest = latest_version(kind)
    body = io.BytesIO(memoryview(data)[HEADER_LEN:])
    try:
        record = fastavro.schemaless_reader(
            body, parsed_schema(kind, version), parsed_schema(kind, latest) if version != latest else None
        )
    except Exception as exc:  # fastavro raises many types on truncated/corrupt bodies
        raise DecodeError("decode_error", f"{kind} v{version}: {type(exc).__name__}: {exc}") from exc
    extra = len(data) - HEADER_LEN - body.tell()
    if extra:  # a valid body followed by more: two messages glued together, a padded buffer
        raise DecodeError("trailing_bytes", f"{extra} bytes after the end of the {kind} v{version} body")
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


def _encode_sensor_block_fast(block: SensorBlock) -> bytes | None:
    """The same bytes as ``encode_record("sensor_block", _sensor_block_to_record(block))`` without
    building the record dicts; ``None`` when the block needs the general path."""
    version = latest_version("sensor_block")
    header_writer = _sensor_block_header_writer(version)
    channels, units = block.channels, block.units
    if header_writer is None or type(channels) is not dict or type(units) is not dict:
        return None
    d = block.__dict__
    out = [header("sensor_block", version)]
    try:
        pre, post = header_writer
        for name, w in pre:
            w(d[name], out)
        if channels:
            out.append(_varint_zigzag(len(channels)))
            for name, arr in channels.items():
                if type(name) is not str:
                    raise _NotFast
                unit = units[name]
                if type(unit) is not str:
                    raise _NotFast
                out.append(_encoded_string(name))
                out.append(_encoded_string(unit))
                data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
                out.append(_varint_zigzag(len(data)))
                out.append(data)
        out.append(b"\x00")
        for name, w in post:
            w(d[name], out)
    except (_NotFast, KeyError):
        return None
    return b"".join(out)


_SB_HEADER_WRITERS: dict[int, Any] = {}


def _sensor_block_header_writer(version: int):
    """(fields before channels, fields after channels) as (name, writer) lists, or None."""
    try:
        return _SB_HEADER_WRITERS[version]
    except KeyError:
        pass
    try:
        fields = parsed_schema("sensor_block", version)["fields"]
        names = [f["name"] for f in fields]
        i = names.index("channels")
        compiled = [(f["name"], _compile(f["type"])) for f in fields if f["name"] != "channels"]
        result = (compiled[:i], compiled[i:])
    except (_NotFast, ValueError):
        result = None
    _SB_HEADER_WRITERS[version] = result
    return result


def encode(event: Event) -> bytes:
    """Encode any event dataclass with the latest schema of its kind."""
    if isinstance(event, SensorBlock):
        fast = _encode_sensor_block_fast(event)
        if fast is not None:
            return fast
        return encode_record("sensor_block", _sensor_block_to_record(event))
    if isinstance(event, (WatchRecord, SessionMarker, RunnerProfile, DeadLetter)):
        return encode_record(event.KIND, event._record_view())  # read-only: no container copies
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
