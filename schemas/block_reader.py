"""Fast decoder of sensor blocks: the hot path of the stream job (most messages are blocks).

``fastavro.schemaless_reader`` builds a dict per channel record and a dict per message (~40-80 us a
block). :func:`read_block` reads the same Avro binary encoding with a reader compiled once per
schema version and returns every channel as a row of **one** ``(channels, samples)`` float32 array
whose bytes are contiguous (``samples_bytes``): the validator checks all channels with one min/max
reduction, and the stream job ships a block across its shuffle without re-encoding it.

It is a fast path, not a second codec: anything it does not expect (another kind, a truncated body,
trailing bytes, channels of different byte lengths, a length that is not a multiple of 4) returns
``None``, and the caller falls back to :func:`schemas.codec.decode`, which raises the
:class:`~schemas.codec.DecodeError` that names the problem. Checked equal to ``decode`` on simulated
fleets and on every malformed case in tests/test_block_reader.py.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from schemas.events import SensorBlock
from schemas.registry import HEADER_LEN, KIND_CODES, MAGIC, parsed_schema, versions

_unpack_double = struct.Struct("<d").unpack_from
_Reader = Callable[[bytes, int], tuple[Any, int]]


class _Malformed(Exception):
    """Not the common shape: let the general decoder decide."""


def _r_long(buf: bytes, pos: int) -> tuple[int, int]:
    """Avro long/int: zigzag varint."""
    b = buf[pos]
    pos += 1
    if b < 128:
        return (b >> 1) ^ -(b & 1), pos
    z, shift = b & 0x7F, 7
    while True:
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 128:
            return (z >> 1) ^ -(z & 1), pos
        shift += 7
        if shift > 63:
            raise _Malformed


def _r_double(buf: bytes, pos: int) -> tuple[float, int]:
    return _unpack_double(buf, pos)[0], pos + 8


def _r_bytes_span(buf: bytes, pos: int) -> tuple[int, int]:
    """Length of a bytes/string value and the position of its first byte."""
    n, pos = _r_long(buf, pos)
    if n < 0 or pos + n > len(buf):
        raise _Malformed
    return n, pos


_STRINGS: dict[bytes, str] = {}  # ids, names and units repeat constantly


def _r_string(buf: bytes, pos: int) -> tuple[str, int]:
    n, pos = _r_bytes_span(buf, pos)
    raw = buf[pos : pos + n]
    s = _STRINGS.get(raw)
    if s is None:
        s = raw.decode()  # UnicodeDecodeError -> caller falls back
        if n <= 64:
            if len(_STRINGS) > 65536:
                _STRINGS.clear()
            _STRINGS[raw] = s
    return s, pos + n


_PRIMITIVE: dict[str, _Reader] = {"long": _r_long, "int": _r_long, "double": _r_double, "string": _r_string}


def _compile(schema: Any) -> _Reader:
    if isinstance(schema, str):
        if schema in _PRIMITIVE:
            return _PRIMITIVE[schema]
        raise _Malformed
    if isinstance(schema, list):  # [null, T] / [T, null]
        if len(schema) != 2 or "null" not in schema:
            raise _Malformed
        null_index = schema.index("null")
        other = _compile(schema[1 - null_index])

        def r_union(buf: bytes, pos: int) -> tuple[Any, int]:
            i, pos = _r_long(buf, pos)
            if i == null_index:
                return None, pos
            if i != 1 - null_index:
                raise _Malformed
            return other(buf, pos)

        return r_union
    t = schema.get("type")
    if t in _PRIMITIVE:
        return _PRIMITIVE[t]
    if t == "enum":
        symbols = tuple(schema["symbols"])

        def r_enum(buf: bytes, pos: int) -> tuple[str, int]:
            i, pos = _r_long(buf, pos)
            if not 0 <= i < len(symbols):
                raise _Malformed
            return symbols[i], pos

        return r_enum
    raise _Malformed


class _Layout(NamedTuple):
    pre: list[tuple[str, _Reader]]  # header fields before the channel array
    post: list[tuple[str, _Reader]]  # after it


_LAYOUTS: dict[int, _Layout | None] = {}


def _layout(version: int) -> _Layout | None:
    if version not in _LAYOUTS:
        try:
            fields = parsed_schema("sensor_block", version)["fields"]
            names = [f["name"] for f in fields]
            i = names.index("channels")
            channel_fields = [f["name"] for f in fields[i]["type"]["items"]["fields"]]
            if channel_fields != ["name", "unit", "data"]:
                raise _Malformed
            compiled = [(f["name"], _compile(f["type"])) for f in fields if f["name"] != "channels"]
            _LAYOUTS[version] = _Layout(compiled[:i], compiled[i:])
        except (_Malformed, ValueError, KeyError):
            _LAYOUTS[version] = None
    return _LAYOUTS[version]


class ReadBlock(NamedTuple):
    """A decoded block and its samples as one ``(channels, n)`` float32 array (channels are its rows)
    plus the array's bytes (little-endian float32, channel after channel)."""

    block: SensorBlock
    samples: np.ndarray
    samples_bytes: bytes


_SENSOR_BLOCK_CODE = KIND_CODES["sensor_block"]
_KNOWN_VERSIONS = frozenset(versions("sensor_block"))


def _block_layout(data: bytes | None) -> _Layout | None:
    """The compiled layout of ``data`` when it is an encoded sensor block of a shipped version."""
    if data is None or len(data) < HEADER_LEN or data[:2] != MAGIC or data[2] != _SENSOR_BLOCK_CODE:
        return None
    return _layout(data[3]) if data[3] in _KNOWN_VERSIONS else None


class BlockHeader(NamedTuple):
    """The fields of an encoded sensor block before its channel array (what routing, watermarks and the
    header checks need), read without touching the samples."""

    runner_id: str
    device_id: str
    session_id: str
    seq: int
    sensor: str
    side: str
    start_time_us: int
    sample_rate_hz: float
    n_samples: int

    @property
    def end_time_us(self) -> int:
        """Time just after the last sample (start + n / rate), as :attr:`SensorBlock.end_time_us`."""
        return self.start_time_us + round(self.n_samples * 1e6 / self.sample_rate_hz)


_HEADER_FIELDS = BlockHeader._fields


def peek_block_header(data: bytes | None) -> BlockHeader | None:
    """The header fields of an encoded sensor block (~3 us: nothing after them is read, so a body that is
    truncated or malformed later still returns a header). ``None``: not a sensor block of a shipped
    version with the expected field order, or the header itself does not parse."""
    layout = _block_layout(data)
    if layout is None or tuple(name for name, _ in layout.pre) != _HEADER_FIELDS:
        return None
    pos = HEADER_LEN
    values = []
    try:
        for _, reader in layout.pre:
            value, pos = reader(data, pos)
            values.append(value)
    except (_Malformed, IndexError, struct.error, UnicodeDecodeError):
        return None
    header = BlockHeader._make(values)
    return header if header.sample_rate_hz > 0 else None  # the end time divides by the rate


def read_block(data: bytes | None) -> ReadBlock | None:
    """Decode an encoded sensor block (any shipped version) on the fast path; ``None``: use
    :func:`schemas.codec.decode` (not a sensor block, or anything unusual about it)."""
    layout = _block_layout(data)
    if layout is None:
        return None
    try:
        return _read(data, data[3], layout)
    except (_Malformed, IndexError, struct.error, UnicodeDecodeError):
        return None


class _Template(NamedTuple):
    """The byte layout of one channel array seen before: the bytes between the sample spans (counts,
    names, units, lengths) are fixed for a given device kind, so one ``struct`` call splits a block
    into those (compared with the template's) and its sample spans."""

    unpack_from: Callable[[bytes, int], tuple[bytes, ...]]
    size: int
    fixed: tuple[bytes, ...]
    names: tuple[str, ...]
    units: dict[str, str]
    width: int


_TEMPLATES: dict[bytes, _Template] = {}


def _read_channels(data: bytes, pos: int) -> tuple[list[bytes], tuple[str, ...], dict[str, str], int, int]:
    """The channel array at ``pos``: (sample spans, names, units, span bytes, position after it)."""
    start = pos
    count, p = _r_long(data, pos)  # first channel's prefix (count, name, unit, length) keys a template
    if count > 0:
        _, p = _r_string(data, p)
        _, p = _r_string(data, p)
        _, p = _r_bytes_span(data, p)
    tpl = _TEMPLATES.get(data[start:p])
    if tpl is not None and start + tpl.size <= len(data):
        parts = tpl.unpack_from(data, start)
        if parts[0::2] == tpl.fixed:
            return list(parts[1::2]), tpl.names, tpl.units, tpl.width, start + tpl.size
    # general path: parse item by item and remember the layout as a template
    names: list[str] = []
    units: dict[str, str] = {}
    spans: list[bytes] = []
    cuts = [start]  # alternating fixed/sample boundaries
    width = -1
    while True:  # array blocks: count (negative: followed by a byte size), items; 0 ends
        count, pos = _r_long(data, pos)
        if count == 0:
            break
        if count < 0:
            count = -count
            _, pos = _r_long(data, pos)
        for _ in range(count):
            name, pos = _r_string(data, pos)
            unit, pos = _r_string(data, pos)
            n, pos = _r_bytes_span(data, pos)
            if n % 4 or (width >= 0 and n != width) or name in units:
                raise _Malformed
            width = n
            names.append(name)
            units[name] = unit
            spans.append(data[pos : pos + n])
            cuts += [pos, pos + n]
            pos += n
    cuts.append(pos)
    if names and len(_TEMPLATES) < 1024:
        fmt = "<" + "".join(f"{b - a}s" for a, b in zip(cuts, cuts[1:], strict=False))
        fixed = tuple(data[a:b] for a, b in zip(cuts[0::2], cuts[1::2], strict=True))
        unpack = struct.Struct(fmt).unpack_from
        first = cuts[1]
        _TEMPLATES[data[start:first]] = _Template(unpack, pos - start, fixed, tuple(names), units, width)
    return spans, tuple(names), units, width, pos


def _read(data: bytes, version: int, layout: _Layout) -> ReadBlock:
    pos = HEADER_LEN
    header: dict[str, Any] = {}
    for name, reader in layout.pre:
        header[name], pos = reader(data, pos)
    spans, names, units, width, pos = _read_channels(data, pos)
    for name, reader in layout.post:
        header[name], pos = reader(data, pos)
    if pos != len(data):
        raise _Malformed
    joined = b"".join(spans)
    samples = np.frombuffer(joined, dtype="<f4").reshape(len(names), max(width, 0) // 4)
    block = SensorBlock(
        channels=dict(zip(names, samples, strict=True)), units=dict(units), schema_version=version, **header
    )
    return ReadBlock(block, samples, joined)
