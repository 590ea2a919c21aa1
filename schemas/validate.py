"""Validation at the door: one validator for every producer and for the stream job.

``check(event)`` returns ``None`` for a valid event or a :class:`Rejection` whose ``reason`` is a
dead-letter reason code (see schemas/README.md). Checks: required fields, the id contract
(:data:`ID_PATTERN`), types, ranges, sampling rate, array lengths, finite samples, timestamps not
far in the future, sequence numbers >= 0, the profile contract (no contact data, bands only).

Checks that need more than the event, as pure functions for the stream job (issue 13):
:func:`check_envelope` (the Kafka topic and key a message came with), :func:`check_sequence_order`
and :func:`check_marker_order` (against what its session has seen so far).
Per-device sequence continuity (duplicates, gaps) is tracked by :class:`SequenceTracker`.
"""

from __future__ import annotations

import math
import re
import time
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from schemas import ids
from schemas.events import (
    SAMPLE_RATE_RANGE_HZ,
    SENSOR_CHANNELS,
    DeadLetter,
    Event,
    RunnerProfile,
    SensorBlock,
    SessionMarker,
    WatchRecord,
)

#: how far ahead of "now" an event time may be, microseconds: device clock drift, not a wrong time
#: zone or a clock set to another day. "Now" is the producer's clock in the publisher and the time the
#: message reached Kafka (its record timestamp) in the stream job, so a rerun decides the same.
MAX_FUTURE_US = 15 * 60 * 1_000_000
#: the one id contract (runner, device, session ids; Kafka keys): 1-64 ASCII letters, digits and
#: ``. _ : -``. No spaces, ``@`` or ``+``, so no name, e-mail address or phone number fits an id.
ID_PATTERN = re.compile(ids.ID_PATTERN)  # defined once, in schemas/ids.py
#: profile contract: a cohort is a club / clinic / study-group label; a birth year is a 5-year band
COHORT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._/&()'+-]{0,63}")
#: a birth-year band: ``1985-1989`` (5 years), ``1980-1989`` (10 years) or the decade ``1980s``; an exact
#: year is not a band
BIRTH_YEAR_BAND = re.compile(r"(?:19|20)\d\d-(?:19|20)\d\d|(?:19|20)\d0s")
PROFILE_SEXES = ("female", "male", "unknown")
#: rejections whose input holds personal data: their dead letters keep no copy of it
WITHHELD_REASONS = frozenset({"contact_data"})
#: contact data in free text: an e-mail address, or a phone number (9+ digits, separators allowed;
#: fewer would take "2019-2020" for one)
CONTACT_PATTERNS: dict[str, re.Pattern[str]] = {
    "an e-mail address": re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+"),
    "a phone number": re.compile(r"(?<!\w)\+?\d(?:[\s./()-]*\d){8,}"),
}
#: events before this are rejected as implausible (2000-01-01T00:00:00Z)
MIN_TIME_US = 946_684_800 * 1_000_000
MAX_BLOCK_SAMPLES = 60_000

#: inclusive physical ranges for watch-record fields (unit in the name)
WATCH_RANGES: dict[str, tuple[float, float]] = {
    "heart_rate_bpm": (25, 250),
    "speed_m_s": (0.0, 15.0),
    "distance_m": (0.0, 1_000_000.0),
    "cadence_spm": (0.0, 300.0),
    "ground_contact_time_ms": (50.0, 2000.0),
    "ground_contact_balance_left_pct": (0.0, 100.0),
    "vertical_oscillation_mm": (0.0, 400.0),
    "vertical_ratio_pct": (0.0, 50.0),
    "step_length_mm": (0.0, 4000.0),
    "power_w": (0.0, 3000.0),
    "altitude_m": (-500.0, 9000.0),
    "latitude_deg": (-90.0, 90.0),
    "longitude_deg": (-180.0, 180.0),
}
#: plausible raw sample ranges per unit (IMU saturation limits, EMG envelope)
SAMPLE_RANGES: dict[str, tuple[float, float]] = {
    "m/s^2": (-16 * 9.81 * 2, 16 * 9.81 * 2),
    "deg/s": (-4000.0, 4000.0),
    "uV": (0.0, 10_000.0),
}

REASONS: dict[str, str] = {
    "bad_header": "bytes are not a gluteflow message",
    "unknown_schema": "unknown message kind or schema version",
    "decode_error": "body does not decode with its declared schema",
    "missing_field": "a required field is empty",
    "bad_type": "a field has the wrong type",
    "out_of_range": "a value is outside its physical range",
    "bad_sample_rate": "sampling rate outside the sensor's range",
    "length_mismatch": "channel arrays disagree with n_samples or each other",
    "bad_channels": "channels missing or unknown for the sensor kind",
    "non_finite": "NaN or infinite sample values",
    "future_timestamp": "event time too far in the future",
    "stale_timestamp": "event time before 2000-01-01",
    "bad_sequence": "negative sequence number",
    "late": "arrived after the allowed lateness",
    "corrupt_file": "an uploaded file could not be decoded",
    "forbidden": "an event names a device or runner its credential is not bound to",
    "bad_request": "a request body that is not a whole sequence of framed messages",
    "trailing_bytes": "bytes after the end of a valid message body",
    "bad_id": "an id does not match the id pattern (1-64 of A-Z a-z 0-9 . _ : -)",
    "wrong_topic": "a message of another kind than its topic carries",
    "bad_key": "the Kafka key is null or not the payload's runner id",
    "contact_data": "a name, e-mail address or phone number where the profile contract allows none",
    "sequence_backwards": "a sequence number at or below one already seen, with a later event time",
    "session_order": "a session end marker with no start before it, or before its start",
    "unverified_dead_letter": "a dead letter claiming to be the stream job's own that its lake does not hold",
}


class Rejection(NamedTuple):
    reason: str
    detail: str


def _now_us() -> int:
    return time.time_ns() // 1000


def _shown(value: str, limit: int = 24) -> str:
    """An offending value for a detail line: escaped, cut (a 10 kB id stays out of logs and tables)."""
    text = value[:limit].encode("unicode_escape").decode("ascii")
    return f"'{text}'" + (f"... ({len(value)} chars)" if len(value) > limit else "")


def check_id(name: str, value: object) -> Rejection | None:
    """The id contract (:data:`ID_PATTERN`) for field ``name``."""
    if not isinstance(value, str) or not value.strip():
        return Rejection("missing_field", f"{name} is empty")
    if ID_PATTERN.fullmatch(value) is None:
        for what, pattern in CONTACT_PATTERNS.items():  # never echo contact data
            if pattern.search(value):
                return Rejection("contact_data", f"{name} holds {what} (ids are pseudonymous)")
        return Rejection("bad_id", f"{name} {_shown(value)} does not match {ID_PATTERN.pattern}")
    return None


def valid_id(value: object) -> bool:
    """True when ``value`` fits the id contract (what may be copied into a dead letter's ids)."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def _common(event: Event, time_us: int | None, now_us: int) -> Rejection | None:
    for name in ("runner_id", "device_id", "session_id"):
        bad = check_id(name, getattr(event, name, None))
        if bad is not None:
            return bad
    seq = getattr(event, "seq", None)
    if not isinstance(seq, int) or isinstance(seq, bool):
        return Rejection("bad_type", f"seq must be an int, got {type(seq).__name__}")
    if seq < 0:
        return Rejection("bad_sequence", f"seq {seq} < 0")
    if time_us is not None:
        if not isinstance(time_us, int):
            return Rejection("bad_type", f"time must be int microseconds, got {type(time_us).__name__}")
        if time_us > now_us + MAX_FUTURE_US:
            ahead_h = (time_us - now_us) / 3.6e9
            return Rejection("future_timestamp", f"event time is {ahead_h:.1f} h ahead of now")
        if time_us < MIN_TIME_US:
            return Rejection("stale_timestamp", f"event time {time_us} us is before 2000-01-01")
    return None


_min = np.minimum.reduce
_max = np.maximum.reduce


_RANGE_VECTORS: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}


def _range_vectors(names: tuple[str, ...], expected: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """float32 (low, high) per channel: the same values a Python-float bound takes against float32."""
    try:
        return _RANGE_VECTORS[names]
    except KeyError:
        lo = np.array([SAMPLE_RANGES[expected[k]][0] for k in names], dtype=np.float32)
        hi = np.array([SAMPLE_RANGES[expected[k]][1] for k in names], dtype=np.float32)
        _RANGE_VECTORS[names] = (lo, hi)
        return lo, hi


def _samples_all_ok(b: SensorBlock, expected: dict[str, str], samples: np.ndarray | None = None) -> bool:
    """True when every channel is a 1-D array of n_samples finite, in-range values with the right unit
    (one min and one max reduction over all channels stacked). False means "check one by one".
    ``samples``: the channels already stacked in ``b.channels`` order (the block reader's array)."""
    n = b.n_samples
    if b.units != expected:
        return False
    if samples is None or samples.dtype != np.float32 or samples.shape != (len(b.channels), n):
        arrays = []
        for arr in b.channels.values():
            if type(arr) is not np.ndarray or arr.ndim != 1 or len(arr) != n:
                return False
            arrays.append(arr)
        samples = np.array(arrays, dtype=np.float32)
    lo, hi = _range_vectors(tuple(b.channels), expected)
    # NaN propagates through min/max and fails both comparisons; +-inf is out of every range
    return bool((lo <= _min(samples, axis=1)).all() and (_max(samples, axis=1) <= hi).all())


def _check_block_header(b) -> Rejection | None:
    """Sensor kind, side, sampling rate and sample count of a block (or of its :class:`BlockHeader`)."""
    if SENSOR_CHANNELS.get(b.sensor) is None:
        return Rejection("bad_channels", f"unknown sensor kind {b.sensor!r}")
    if b.side not in ("left", "right", "center"):
        return Rejection("out_of_range", f"side {b.side!r}")
    lo, hi = SAMPLE_RATE_RANGE_HZ[b.sensor]
    if not isinstance(b.sample_rate_hz, (int, float)) or not (lo <= b.sample_rate_hz <= hi):
        return Rejection("bad_sample_rate", f"{b.sensor} at {b.sample_rate_hz} Hz, allowed {lo:g}-{hi:g} Hz")
    if not (1 <= b.n_samples <= MAX_BLOCK_SAMPLES):
        return Rejection("out_of_range", f"n_samples {b.n_samples} outside 1-{MAX_BLOCK_SAMPLES}")
    return None


def check_block_header(header, *, now_us: int | None = None) -> Rejection | None:
    """The checks of :func:`check` that need only a sensor block's header fields (ids, sequence number,
    start time, sensor kind, side, rate, sample count), in the same order, so a header that passes
    here fails :func:`check` only on its channels or samples. ``header``: a
    :class:`~schemas.block_reader.BlockHeader` or a :class:`SensorBlock`."""
    now_us = _now_us() if now_us is None else now_us
    return _common(header, header.start_time_us, now_us) or _check_block_header(header)


def _check_block(b: SensorBlock, samples: np.ndarray | None = None) -> Rejection | None:
    return _check_block_header(b) or _check_block_body(b, samples)


def check_block_bodies(
    blocks: Sequence[SensorBlock], samples: Sequence[np.ndarray | None]
) -> list[Rejection | None]:
    """The channel checks of :func:`check` (names, units, lengths, finite in-range samples) for many
    sensor blocks whose headers already passed :func:`check_block_header`: the answer ``check`` would
    give each, with one min and one max reduction per group of blocks of the same sensor and channel
    order instead of two per block (``numpy.minimum.reduceat`` over their samples side by side).

    ``samples[i]``: block *i*'s channels stacked as one ``(channels, n)`` float32 array (the block
    reader's), or ``None`` (checked on its own). A block that fails is re-checked on its own, so its
    rejection names the same reason and detail as :func:`check`'s.
    """
    out: list[Rejection | None] = [None] * len(blocks)
    groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for i, (b, s) in enumerate(zip(blocks, samples, strict=True)):
        expected = SENSOR_CHANNELS.get(b.sensor)
        if (
            expected is not None
            and s is not None
            and s.dtype == np.float32
            and s.shape == (len(b.channels), b.n_samples)
            and b.n_samples >= 1
            and b.units == expected
            and b.channels.keys() == expected.keys()
        ):
            groups.setdefault((b.sensor, tuple(b.channels)), []).append(i)
        else:
            out[i] = _check_block_body(b, s)
    for (sensor, names), idx in groups.items():
        stacked = np.concatenate([samples[i] for i in idx], axis=1)
        starts = np.cumsum([0] + [blocks[i].n_samples for i in idx[:-1]])
        lo, hi = _range_vectors(names, SENSOR_CHANNELS[sensor])
        # NaN propagates through minimum/maximum and fails both comparisons; +-inf is out of range
        ok = (lo[:, None] <= np.minimum.reduceat(stacked, starts, axis=1)).all(axis=0) & (
            np.maximum.reduceat(stacked, starts, axis=1) <= hi[:, None]
        ).all(axis=0)
        for i, good in zip(idx, ok.tolist(), strict=True):
            if not good:
                out[i] = _check_block_body(blocks[i], samples[i])
    return out


def _check_block_body(b: SensorBlock, samples: np.ndarray | None = None) -> Rejection | None:
    """Channel names, units, lengths and sample values of a block whose header checks passed."""
    expected = SENSOR_CHANNELS[b.sensor]
    if b.channels.keys() != expected.keys():
        missing = set(expected) - set(b.channels)
        unknown = set(b.channels) - set(expected)
        return Rejection("bad_channels", f"{b.sensor}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    if _samples_all_ok(b, expected, samples):
        return None
    # something is wrong (or the channels are not plain 1-D arrays): check channel by channel, in order
    for name, arr in b.channels.items():
        if len(arr) != b.n_samples:
            return Rejection(
                "length_mismatch", f"channel {name} has {len(arr)} samples, n_samples={b.n_samples}"
            )
        if b.units.get(name) != expected[name]:
            return Rejection(
                "out_of_range", f"channel {name} unit {b.units.get(name)!r}, expected {expected[name]!r}"
            )
        a = np.asarray(arr, dtype=np.float32)
        s_lo, s_hi = SAMPLE_RANGES[expected[name]]
        # fast path: min/max propagate NaN and expose +-inf, so in-range extremes mean every sample is
        # finite and in range; otherwise fall through to the checks that name the reason
        if a.size and s_lo <= _min(a, axis=None) and _max(a, axis=None) <= s_hi:
            continue
        if not np.isfinite(a).all():
            return Rejection(
                "non_finite", f"channel {name} has {int((~np.isfinite(a)).sum())} non-finite samples"
            )
        if a.size and (a.min() < s_lo or a.max() > s_hi):
            return Rejection(
                "out_of_range",
                f"channel {name} range [{a.min():.4g}, {a.max():.4g}] outside [{s_lo:g}, {s_hi:g}]",
            )
    return None


def _check_watch(r: WatchRecord) -> Rejection | None:
    for name, (lo, hi) in WATCH_RANGES.items():
        value = getattr(r, name)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return Rejection("bad_type", f"{name} must be a number, got {type(value).__name__}")
        if not math.isfinite(value) or not (lo <= value <= hi):
            return Rejection("out_of_range", f"{name}={value} outside {lo:g}-{hi:g}")
    return None


def check(event: Event, *, now_us: int | None = None, samples: np.ndarray | None = None) -> Rejection | None:
    """Validate one decoded event; ``None`` when it is acceptable. ``samples``: a sensor block's
    channels stacked as one ``(channels, n)`` float32 array when the caller has it
    (:func:`schemas.block_reader.read_block`), so they are not stacked again."""
    now_us = _now_us() if now_us is None else now_us
    if isinstance(event, SensorBlock):
        return _common(event, event.start_time_us, now_us) or _check_block(event, samples)
    if isinstance(event, WatchRecord):
        return _common(event, event.timestamp_us, now_us) or _check_watch(event)
    if isinstance(event, SessionMarker):
        bad = _common(event, event.timestamp_us, now_us)
        if bad:
            return bad
        if event.marker not in ("start", "end"):
            return Rejection("out_of_range", f"marker {event.marker!r}")
        if event.total_elapsed_s is not None and not (0 <= event.total_elapsed_s <= 7 * 86400):
            return Rejection("out_of_range", f"total_elapsed_s={event.total_elapsed_s}")
        return None
    if isinstance(event, RunnerProfile):
        return _common(event, event.updated_at_us, now_us) or check_profile_contract(event)
    if isinstance(event, DeadLetter):
        return None
    return Rejection("unknown_schema", f"not a gluteflow event: {type(event).__name__}")


def check_profile_contract(p: RunnerProfile) -> Rejection | None:
    """The lake promises pseudonymous ids and demographic bands only: a cohort label without contact
    data, sex from a closed list, a 5-year birth band, an IANA time zone, HR bounds. Details name the
    field and what it looked like, never its value."""
    if not p.cohort or not p.time_zone:
        return Rejection("missing_field", "cohort and time_zone are required")
    for name in ("cohort", "birth_year_band", "time_zone", "sex"):
        if not isinstance(getattr(p, name), str):
            return Rejection("bad_type", f"{name} must be a string")
    for what, pattern in CONTACT_PATTERNS.items():  # the one free-text field (the others have patterns)
        if pattern.search(p.cohort):
            return Rejection("contact_data", f"cohort holds {what}")
    if COHORT_PATTERN.fullmatch(p.cohort) is None:
        return Rejection("out_of_range", f"cohort {_shown(p.cohort)} does not match {COHORT_PATTERN.pattern}")
    if p.sex not in PROFILE_SEXES:
        return Rejection("out_of_range", f"sex must be one of {', '.join(PROFILE_SEXES)}")
    band = p.birth_year_band
    if BIRTH_YEAR_BAND.fullmatch(band) is None or (
        "-" in band and (int(band[:4]) % 5 or int(band[5:]) - int(band[:4]) not in (4, 9))
    ):
        return Rejection("out_of_range", "birth_year_band must be a band like 1985-1989, 1980-1989 or 1980s")
    try:
        zoneinfo.ZoneInfo(p.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return Rejection("out_of_range", f"time_zone {_shown(p.time_zone)} is not an IANA zone")
    for name in ("resting_hr_bpm", "max_hr_bpm"):
        v = getattr(p, name)
        if v is not None and not (25 <= v <= 250):
            return Rejection("out_of_range", f"{name}={v} outside 25-250")
    return None


def check_envelope(
    topic: str, expected_kind: str | None, kind: str, key: bytes | None, payload_key: bytes
) -> Rejection | None:
    """A message's Kafka envelope: its kind is the one its topic carries (``expected_kind``; ``None``:
    any), and its key is the payload's own (:attr:`Event.key`: the runner id), so one runner's events
    share a partition and a shard."""
    if expected_kind is not None and kind != expected_kind:
        return Rejection("wrong_topic", f"a {kind} on {topic}, which carries {expected_kind} messages")
    if key is None:
        return Rejection("bad_key", "null Kafka key (the key must be the runner id)")
    if key != payload_key:
        shown = _shown(key.decode("utf-8", "replace"))
        return Rejection("bad_key", f"Kafka key {shown} is not the payload's runner id")
    return None


def check_sequence_order(top: tuple[int, int] | None, seq: int, time_us: int) -> Rejection | None:
    """One device's sequence against the highest ``(seq, event time us)`` its session has seen.

    A lower (or equal) number with a *later* event time cannot be a retry or a reordering (those
    repeat an earlier time): the counter went backwards (a device reset, a reused number), and
    deduplicating on it would drop new data silently. Lower numbers with earlier times are late or
    reordered deliveries and pass (the lateness rule decides about blocks)."""
    if top is not None and seq <= top[0] and time_us > top[1]:
        return Rejection(
            "sequence_backwards",
            f"seq {seq} after seq {top[0]}, but {(time_us - top[1]) / 1e6:.3f} s later in event time",
        )
    return None


def check_marker_order(
    start_us: int | None, end_us: int | None, marker: str, time_us: int
) -> Rejection | None:
    """A session marker against the session's start and end seen so far (in arrival order)."""
    if marker == "end" and start_us is None:
        return Rejection("session_order", "end marker with no start marker before it")
    if marker == "end" and time_us < start_us:
        return Rejection("session_order", f"end marker {(start_us - time_us) / 1e6:.3f} s before the start")
    if marker == "start" and end_us is not None and time_us > end_us:
        return Rejection("session_order", "start marker after the session's end marker")
    return None


@dataclass
class SequenceTracker:
    """Per-device sequence bookkeeping: duplicates, gaps and out-of-order arrivals.

    ``observe(device_id, seq)`` returns ``"new"``, ``"duplicate"`` (seen before) or
    ``"out_of_order"`` (new but lower than the highest seen). ``gaps`` counts missing numbers.
    """

    seen: dict[str, set[int]] = field(default_factory=dict)
    highest: dict[str, int] = field(default_factory=dict)

    def observe(self, device_id: str, seq: int) -> str:
        seen = self.seen.setdefault(device_id, set())
        if seq in seen:
            return "duplicate"
        seen.add(seq)
        top = self.highest.get(device_id, -1)
        self.highest[device_id] = max(top, seq)
        return "out_of_order" if seq < top else "new"

    @property
    def gaps(self) -> int:
        return sum(self.highest[d] + 1 - len(s) for d, s in self.seen.items())
