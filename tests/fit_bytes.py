"""FIT files written byte by byte from the FIT protocol (for tests): header, definition and data messages,
normal and compressed-timestamp record headers, the file CRC.

Independent of any decoder: the layout follows the FIT protocol document (file header of 14 bytes with
an optional header CRC, record headers, little-endian definitions, CRC-16 with the protocol's nibble table).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

# FIT base types: (code, struct format)
ENUM, UINT8, UINT16, UINT32, UINT32Z = 0x00, 0x02, 0x84, 0x86, 0x8C
_FORMAT = {ENUM: "B", UINT8: "B", UINT16: "H", UINT32: "I", UINT32Z: "I"}
_CRC_TABLE = (
    0x0000, 0xCC01, 0xD801, 0x1400, 0xF001, 0x3C00, 0x2800, 0xE401,
    0xA001, 0x6C00, 0x7800, 0xB401, 0x5000, 0x9C01, 0x8801, 0x4400,
)  # fmt: skip

#: global message numbers and field numbers of Garmin's profile used here
FILE_ID, SESSION, RECORD, ACTIVITY = 0, 18, 20, 34
TIMESTAMP = 253
SPORT = {"running": 1, "cycling": 2, "transition": 3}


def crc16(data: bytes, crc: int = 0) -> int:
    """The FIT protocol's CRC-16 (two nibble lookups per byte)."""
    for byte in data:
        for nibble in (byte & 0xF, byte >> 4):
            tmp = _CRC_TABLE[crc & 0xF]
            crc = ((crc >> 4) & 0x0FFF) ^ tmp ^ _CRC_TABLE[nibble]
    return crc


def header(data_size: int, header_crc: bool = True) -> bytes:
    """14-byte file header; ``header_crc=False`` writes 0x0000 ("not computed")."""
    head = struct.pack("<BBHI4s", 14, 0x20, 2132, data_size, b".FIT")
    return head + struct.pack("<H", crc16(head) if header_crc else 0)


def with_file_crc(body: bytes) -> bytes:
    """Header + records followed by the file CRC computed over all of them."""
    return body + struct.pack("<H", crc16(body))


def recompute_file_crc(data: bytes) -> bytes:
    """A single FIT file with its trailing file CRC recomputed (after editing bytes)."""
    return with_file_crc(data[:-2])


@dataclass
class FitWriter:
    """Accumulates definition and data messages; :meth:`bytes` wraps them in a header and the file CRC."""

    records: bytearray = field(default_factory=bytearray)
    fields: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def define(self, local: int, global_num: int, fields: list[tuple[int, int]]) -> None:
        """Definition message: ``fields`` = [(field number, base type)], little-endian architecture."""
        self.fields[local] = fields
        self.records += struct.pack("<BBBHB", 0x40 | local, 0, 0, global_num, len(fields))
        for num, base in fields:
            self.records += struct.pack("<BBB", num, struct.calcsize(_FORMAT[base]), base)

    def _values(self, local: int, values: list[int]) -> bytes:
        fmt = "<" + "".join(_FORMAT[base] for _, base in self.fields[local])
        return struct.pack(fmt, *values)

    def data(self, local: int, values: list[int]) -> None:
        """Data message with a normal record header."""
        self.records += bytes([local & 0x0F]) + self._values(local, values)

    def compressed(self, local: int, time_offset: int, values: list[int]) -> None:
        """Data message with a compressed-timestamp header: bit 7 set, local type in bits 5-6 (0-3),
        the timestamp's low 5 bits in bits 0-4."""
        assert 0 <= local <= 3
        self.records += bytes([0x80 | (local << 5) | (time_offset & 0x1F)]) + self._values(local, values)

    def bytes(self, header_crc: bool = True) -> bytes:
        return with_file_crc(header(len(self.records), header_crc) + bytes(self.records))


def file_id(w: FitWriter, local: int, created: int, serial: int = 123456) -> None:
    """file_id: type activity (4), manufacturer garmin (1), product 2697 (fenix5), serial, time_created."""
    w.define(local, FILE_ID, [(0, ENUM), (1, UINT16), (2, UINT16), (3, UINT32Z), (4, UINT32)])
    w.data(local, [4, 1, 2697, serial, created])


def define_session(w: FitWriter, local: int) -> None:
    """session: timestamp, start_time, sport, total_elapsed_time (s x 1000), total_distance (m x 100)."""
    w.define(local, SESSION, [(TIMESTAMP, UINT32), (2, UINT32), (5, ENUM), (7, UINT32), (9, UINT32)])


def session(w: FitWriter, local: int, start: int, end: int, sport: str, distance_m: float) -> None:
    w.data(local, [end, start, SPORT[sport], (end - start) * 1000, round(distance_m * 100)])


def activity(w: FitWriter, local: int, end: int, n_sessions: int) -> None:
    """activity: timestamp, num_sessions, type manual (0), event activity (26), event_type stop (1)."""
    w.define(local, ACTIVITY, [(TIMESTAMP, UINT32), (1, UINT16), (2, ENUM), (3, ENUM), (4, ENUM)])
    w.data(local, [end, n_sessions, 0, 26, 1])


#: 2024-11-08T...: chosen so that T0 % 32 == 20 and the compressed offsets roll over after 12 s
T0 = 1_100_000_020
RECORD_FIELDS = [(3, UINT8), (5, UINT32), (6, UINT16), (4, UINT8)]  # heart_rate, distance, speed, cadence


def record_values(i: int) -> list[int]:
    """heart_rate bpm, distance (m x 100), speed (m/s x 1000), cadence (strides/min) of record i."""
    return [140 + i % 20, i * 300, 3000, 85 + i % 3]


def compressed_run(n: int = 45, serial: int = 123456) -> tuple[bytes, list[int]]:
    """A running activity whose records after the first carry compressed-timestamp headers.

    Returns (file bytes, the records' timestamps in FIT seconds, computed here from the protocol rule:
    a compressed header holds the timestamp's low 5 bits; it rolls over when they are below the last ones).
    """
    w = FitWriter()
    file_id(w, 0, T0, serial)
    w.define(1, RECORD, [(TIMESTAMP, UINT32), *RECORD_FIELDS])  # full timestamp (sets the reference)
    w.define(0, RECORD, RECORD_FIELDS)  # no timestamp field: used with compressed headers
    times = [T0 + i + i // 10 for i in range(n)]  # 1 s steps with a 2 s step every ten records
    w.data(1, [times[0], *record_values(0)])
    for i, t in enumerate(times[1:], start=1):
        w.compressed(0, t & 0x1F, record_values(i))
    define_session(w, 2)
    session(w, 2, times[0], times[-1], "running", (n - 1) * 3.0)
    activity(w, 3, times[-1], 1)
    return w.bytes(), times


def multisport(header_crc: bool = True) -> bytes:
    """Bike 0-9 s, transition 10-14 s, run 15-29 s: one record per second, sessions written at the end."""
    w = FitWriter()
    file_id(w, 0, T0)
    w.define(1, RECORD, [(TIMESTAMP, UINT32), *RECORD_FIELDS])
    for i in range(30):
        w.data(1, [T0 + i, *record_values(i)])
    define_session(w, 2)
    session(w, 2, T0, T0 + 9, "cycling", 27.0)
    session(w, 2, T0 + 10, T0 + 14, "transition", 12.0)
    session(w, 2, T0 + 15, T0 + 29, "running", 42.0)
    activity(w, 3, T0 + 29, 3)
    return w.bytes(header_crc)
