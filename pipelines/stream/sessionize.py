"""Event-time processing of one (runner, session): order, dedup, late data, gaps, stride segmentation with
carry-over state, and feature assembly. Pure Python/numpy (no Beam): the Beam DoFn in
:mod:`pipelines.stream.transforms` is a thin wrapper, and the offline reference uses the same assembly.

Policy (all times are device event time, microseconds)
------------------------------------------------------
* **Units**: one buffer per sensor unit ``(sensor, side, device_id)`` of the session.
* **Duplicates**: same ``(kind, device_id, seq)`` seen before (in this batch or any earlier one: the seen
  sequence numbers are carried as ranges) -> dropped and counted, not dead-lettered.
* **Order**: a key's events are examined in arrival order (Kafka record time, then topic, partition and
  offset), and every decision below is taken per event in that order, from the event-time data and
  record times seen so far. So the decisions, and every value computed from the data they admit, are
  the same however the stream is cut into batches, bundles or panes.
* **Late**: a block is late when it starts before ``max_end_seen(unit) - allowed_lateness`` or before
  the unit's consumed frontier, or its unit/session is already closed -> dead letter ``late``.
* **Gaps**: samples further apart than 1.5 sample periods split a unit into segments; strides are
  detected per segment, so no stride spans a gap.
* **Start and clocks**: every device sends a start marker on its own clock at the same moment, before its
  data. A unit's start is fixed once: its device's start marker, or its first sample when no marker came
  within ``start_wait_s`` of its data (or an end marker came first). A time ``t`` of a unit is ``t - start`` into the session, so pelvis and EMG samples
  are placed on a foot's clock as ``t - start_aux + start_foot`` and ``session_elapsed_s`` is
  ``IC - start_foot`` (both on the foot's clock). A start never changes once fixed, so the values never
  depend on how the events were cut into batches.
* **Strides and carry-over**: the foot detector runs over the unit's buffered samples. A stride is final
  when its next IC is at least ``guard_s`` before the end of its (still open) segment, or its segment is
  final. Emitted strides advance ``last_emitted_ic_us``; the buffer keeps samples from
  ``last_emitted_ic - pre_s`` on: work per batch does not grow with session length.
* **Joins**: a foot stride waits until the other foot's detection and every joining sensor's data
  (pelvis IMU, EMG: :mod:`pipelines.stream.sensors`) are final over ``[IC, next IC]`` (their data up to
  there can no longer change) and aligned to the session clock, or those units are closed or absent.
  A unit is closed when the session's most advanced unit got ``unit_stall_s`` of device time ahead of
  it (a dying battery, a removed sensor); a foot or sensor kind that sent nothing in that time is
  absent. Nothing is emitted on the assumption that a unit "is not there": that could change with the
  next message, and the stride's values with it. There is no time-out that emits a stride before its
  data are final.
* **Closing**: a session closes when an end marker has been seen and every unit reached the end (its
  device's own end marker, else the session's latest end in elapsed time; its last block arrived, no
  hole in its last ``end_contiguous_s``) or stopped more than ``allowed_lateness_s`` before the most
  advanced unit; or when it went quiet: ``session_gap_s`` of **arrival time** (Kafka record time)
  passed after its last event. The quiet rule uses arrival time, not device time, because runners
  sharing a partition upload at different device times (a replayed backlog, a watch syncing late): a
  device-time watermark would close one runner's session behind another's. The Beam composite fires it
  as an event-time timer on record time; an event that arrives after the gap finds the session closed
  whether or not the timer has fired yet. Closing flushes every remaining stride; later blocks are late.
"""

from __future__ import annotations

import datetime as dt
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.science.gait import detect_gait_events
from pipelines.science.stride_features import FEATURE_COLUMNS, compute_stride_features, flight_time_ms
from pipelines.stream.sensors import FOOT_KIND, STRIDE_SENSORS
from schemas.events import SENSOR_CHANNELS, SensorBlock, SessionMarker, WatchRecord, sample_offsets_us
from schemas.validate import Rejection, check_marker_order, check_sequence_order

INF = np.iinfo(np.int64).max // 4
AUX_MARGIN_US = 1_000_000
RECENT_IC_KEEP_US = 5_000_000  # other-foot ICs kept before the earliest stride still buffered


@dataclass(frozen=True)
class StreamParams:
    """Event-time policy of the stream job (seconds)."""

    allowed_lateness_s: float = 30.0
    guard_s: float = 1.0
    pre_s: float = 0.2
    session_gap_s: float = 120.0
    end_tolerance_s: float = 0.5  # less than one block: the last block must have arrived
    end_contiguous_s: float = 5.0  # ... and the unit's last seconds must have no hole
    closed_retention_s: float = 6 * 3600.0
    gap_periods: float = 1.5
    max_idle_buffer_s: float = 10.0
    unit_stall_s: float = 60.0  # a unit this far behind the session's most advanced one is closed
    start_wait_s: float = 5.0  # device time a unit's data may run before its own start marker arrives


# ------------------------------------------------------------------------------------------------ ranges
def _in_ranges(ranges: list[list[int]], x: int) -> bool:
    for lo, hi in ranges:
        if lo <= x <= hi:
            return True
    return False


def _add_range(ranges: list[list[int]], x: int) -> None:
    """Insert ``x`` into sorted disjoint inclusive ranges (merging neighbours)."""
    for i, (lo, hi) in enumerate(ranges):
        if x == hi + 1:
            ranges[i][1] = x
            if i + 1 < len(ranges) and ranges[i + 1][0] == x + 1:
                ranges[i][1] = ranges[i + 1][1]
                del ranges[i + 1]
            return
        if x == lo - 1:
            ranges[i][0] = x
            return
        if x < lo:
            ranges.insert(i, [x, x])
            return
    ranges.append([x, x])


# ------------------------------------------------------------------------------------------------- state
def _block_times_us(blocks: list[SensorBlock]) -> np.ndarray:
    """Sample times of consecutive blocks, int64 us: ``SensorBlock.times_us`` of each, concatenated,
    computed as one outer sum for blocks of the same length and rate."""
    if len({(b.n_samples, b.sample_rate_hz) for b in blocks}) != 1:
        return np.concatenate([b.times_us() for b in blocks])
    offsets = sample_offsets_us(blocks[0].n_samples, blocks[0].sample_rate_hz)
    starts = np.fromiter((b.start_time_us for b in blocks), np.int64, len(blocks))
    return (starts[:, None] + offsets[None, :]).ravel()


@dataclass
class Unit:
    """Buffered samples of one sensor unit (bounded tail) and its event-time bookkeeping."""

    sensor: str
    side: str
    device_id: str
    rate_hz: float
    times_us: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    data: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.float32))
    max_end_us: int = -INF
    frontier_us: int = -INF
    last_emitted_ic_us: int = -INF
    closed: bool = False
    #: its device's session start on its own clock (the device's start marker, else its first sample),
    #: fixed once; a time ``t`` of this unit is ``t - start_us`` into the session on every device
    start_us: int | None = None
    first_block_us: int | None = None
    #: ``(start, end)`` us of its newest blocks (the last ``end_contiguous_s``): holes at its tail
    recent_blocks: list[tuple[int, int]] = field(default_factory=list)

    @property
    def clock_offset_us(self) -> int:
        """Its clock minus the session clock (0 until its start is fixed)."""
        return self.start_us if self.start_us is not None else 0

    def note_block(self, start_us: int, end_us: int, keep_us: int) -> None:
        """Record a block's span; spans ending more than ``keep_us`` before the newest end are dropped."""
        self.max_end_us = max(self.max_end_us, end_us)
        if self.first_block_us is None or start_us < self.first_block_us:
            self.first_block_us = start_us
        self.recent_blocks.append((start_us, end_us))
        self.recent_blocks = sorted(b for b in self.recent_blocks if b[1] >= self.max_end_us - keep_us)

    def tail_contiguous(self, span_us: int, gap_periods: float) -> bool:
        """No hole between its blocks in the last ``span_us`` before its newest end."""
        max_gap = gap_periods * 1e6 / self.rate_hz
        reach = None
        for a, b in self.recent_blocks:
            if b < self.max_end_us - span_us:
                continue
            if reach is not None and a - reach > max_gap:
                return False
            reach = b if reach is None else max(reach, b)
        return True

    def append(self, blocks: list[SensorBlock]) -> None:
        order = tuple(SENSOR_CHANNELS[self.sensor])
        # one concatenation per channel over all blocks (not a column_stack per block: ~17 us each)
        new_d = np.column_stack(
            [np.concatenate([np.asarray(b.channels[c], np.float32) for b in blocks]) for c in order]
        )
        t = np.concatenate([self.times_us, _block_times_us(blocks)])
        d = np.concatenate([self.data if self.data.size else np.empty((0, len(order)), np.float32), new_d])
        idx = np.argsort(t, kind="stable")
        t, d = t[idx], d[idx]
        keep = np.ones(len(t), bool)
        keep[1:] = np.diff(t) > 0  # overlapping samples (same time): keep the first
        self.times_us, self.data = t[keep], d[keep]

    def segments(self, gap_periods: float) -> list[tuple[int, int]]:
        """Contiguous sample runs ``[a, b)``."""
        n = len(self.times_us)
        if n == 0:
            return []
        period = 1e6 / self.rate_hz
        cuts = np.flatnonzero(np.diff(self.times_us) > gap_periods * period) + 1
        bounds = np.concatenate([[0], cuts, [n]])
        return [(int(bounds[i]), int(bounds[i + 1])) for i in range(len(bounds) - 1)]

    def end_of(self, b: int) -> int:
        """Time just after sample ``b - 1``."""
        return int(self.times_us[b - 1] + round(1e6 / self.rate_hz))

    def trim(self, keep_from_us: int) -> None:
        i = int(np.searchsorted(self.times_us, keep_from_us, side="left"))
        if i:
            self.times_us = self.times_us[i:]
            self.data = self.data[i:]
        self.frontier_us = max(self.frontier_us, keep_from_us)


@dataclass
class SessionState:
    """Everything a (runner, session) carries from one event to the next (Beam state of the key)."""

    runner_id: str
    session_id: str
    units: dict[str, Unit] = field(default_factory=dict)
    seen: dict[str, list[list[int]]] = field(default_factory=dict)  # "kind|device" -> seq ranges
    #: start and end markers per device, each on its device's own clock
    device_starts_us: dict[str, int] = field(default_factory=dict)
    device_ends_us: dict[str, int] = field(default_factory=dict)
    first_sample_us: int | None = None
    #: roles (a joining sensor kind, or ``foot_imu:<side>``) that sent nothing for ``unit_stall_s``
    absent_sensors: set[str] = field(default_factory=set)
    recent_ic_us: dict[str, list[int]] = field(default_factory=dict)  # foot -> its recent final ICs
    #: per-session state of each registered sensor kind's science (e.g. the EMG reference)
    references: dict[str, dict] = field(default_factory=dict)
    strides_emitted: int = 0
    closed: bool = False
    closed_at_us: int | None = None
    last_arrival_us: int = -INF  # newest Kafka record time of its events (the quiet rule's clock)
    partitions: set[int] = field(default_factory=set)  # Kafka partition indices its events came from
    seq_top: dict[str, tuple[int, int]] = field(default_factory=dict)  # "kind|device" -> (seq, time us)

    @property
    def home_partition(self) -> int:
        """The partition index that owns this key when batches are sharded (-1: none seen yet)."""
        return min(self.partitions) if self.partitions else -1

    def to_bytes(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def from_bytes(blob: bytes) -> SessionState:
        return pickle.loads(blob)

    @property
    def last_data_us(self) -> int:
        return max([u.max_end_us for u in self.units.values()] + [-INF])

    def quiet_close_at_us(self, params: StreamParams) -> int | None:
        """Record time at which the session counts as gone quiet (``None``: closed or no data yet)."""
        if self.closed or not self.units:
            return None
        return self.last_arrival_us + int(params.session_gap_s * 1e6)


@dataclass
class Item:
    """One decoded, valid input event with its Kafka coordinates."""

    kind: str  # sensor_block | watch_record | session_marker
    partition: int
    offset: int
    event: Any
    raw: bytes | None = None
    topic: str = ""
    kafka_ts_us: int = 0


@dataclass
class Output:
    strides: list[dict] = field(default_factory=list)
    watch: list[dict] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)
    late: list[Item] = field(default_factory=list)
    rejected: list[tuple[Item, Rejection]] = field(default_factory=list)  # -> dead letters, with reason
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


def _unit_name(b: SensorBlock) -> str:
    return f"{b.sensor}|{b.side}|{b.device_id}"


def _date(us: int) -> dt.date:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))).date()


def watch_row(r: WatchRecord) -> dict:
    return {
        "runner_id": r.runner_id,
        "device_id": r.device_id,
        "session_id": r.session_id,
        "seq": r.seq,
        "timestamp": r.timestamp_us,
        **{
            k: getattr(r, k)
            for k in (
                "heart_rate_bpm",
                "speed_m_s",
                "distance_m",
                "cadence_spm",
                "ground_contact_time_ms",
                "ground_contact_balance_left_pct",
                "vertical_oscillation_mm",
                "vertical_ratio_pct",
                "step_length_mm",
                "power_w",
                "altitude_m",
            )
        },
        "developer_fields": r.developer_fields or None,
        "date": _date(r.timestamp_us),
    }


def session_row(m: SessionMarker) -> dict:
    return {
        "runner_id": m.runner_id,
        "device_id": m.device_id,
        "session_id": m.session_id,
        "seq": m.seq,
        "timestamp": m.timestamp_us,
        "marker": m.marker,
        "source": m.source,
        "sport": m.sport,
        "sub_sport": m.sub_sport,
        "sensors": ",".join(m.sensors or []),
        "total_elapsed_s": m.total_elapsed_s,
        "total_distance_m": m.total_distance_m,
        "avg_heart_rate_bpm": m.avg_heart_rate_bpm,
        "avg_cadence_spm": m.avg_cadence_spm,
        "date": _date(m.timestamp_us),
    }


# ------------------------------------------------------------------------------------------- detection
@dataclass
class FootDetection:
    """Strides found in one foot unit's buffer, absolute times, plus the stable limit per stride."""

    foot: str
    ic_us: np.ndarray
    tc_us: np.ndarray
    next_us: np.ndarray
    stable: np.ndarray  # bool: final (will not change with more data)
    features: dict[str, np.ndarray]  # foot feature columns (FEATURE_COLUMNS), one value per stride
    all_ic_us: np.ndarray  # every IC in final regions (for flight time of the other foot)
    horizon_us: int  # strides with next IC <= horizon are final


def _abs_us(times: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Fractional sample positions -> int microseconds by interpolating the sample times."""
    pos = np.asarray(pos, float)
    out = np.full(len(pos), -1, np.int64)
    ok = np.isfinite(pos)
    if ok.any():
        i = np.clip(np.floor(pos[ok]).astype(np.int64), 0, len(times) - 2)
        frac = pos[ok] - i
        out[ok] = np.round(times[i] + frac * (times[i + 1] - times[i])).astype(np.int64)
    return out


_FEATURE_DTYPES = {"quality_ok": bool, "quality_reason": object}


def detect_foot(unit: Unit, params: StreamParams, final_all: bool) -> FootDetection:
    """Run the gait detector per contiguous segment of the unit's buffer."""
    wm = unit.max_end_us - int(params.allowed_lateness_s * 1e6)
    guard = int(params.guard_s * 1e6)
    ic_l, tc_l, nx_l, st_l, all_ic = [], [], [], [], []
    feats: dict[str, list[np.ndarray]] = {c: [] for c in FEATURE_COLUMNS}
    horizon = INF
    blocked = False  # after the first segment that may still change, nothing later is final
    for a, b in unit.segments(params.gap_periods):
        t = unit.times_us[a:b]
        seg_end = unit.end_of(b)
        final = final_all or unit.closed or seg_end < wm
        if blocked:
            limit = -INF
        elif final:
            limit = INF
        else:
            limit = seg_end - guard
            horizon = limit
            blocked = True
        if b - a < 16:
            continue
        acc = unit.data[a:b, 0:3].astype(float)
        gyr = unit.data[a:b, 3:6].astype(float)
        ev = detect_gait_events(acc, gyr, unit.rate_hz)
        if len(ev) == 0:
            continue
        df = compute_stride_features(ev, acc, gyr)
        ic = _abs_us(t, ev.ic)
        nx = _abs_us(t, ev.ic_next)
        tc = _abs_us(t, ev.tc)
        ai = _abs_us(t, ev.all_ic)
        all_ic.append(ai[ai <= limit])
        ok = np.flatnonzero(np.isfinite(ev.ic) & np.isfinite(ev.ic_next))
        ic_l.append(ic[ok])
        tc_l.append(np.where(np.isfinite(ev.tc[ok]), tc[ok], -1))
        nx_l.append(nx[ok])
        st_l.append(nx[ok] <= limit)
        for c in FEATURE_COLUMNS:
            feats[c].append(df[c].to_numpy()[ok])

    def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)

    return FootDetection(
        foot=unit.side,
        ic_us=cat(ic_l, np.int64),
        tc_us=cat(tc_l, np.int64),
        next_us=cat(nx_l, np.int64),
        stable=cat(st_l, bool),
        features={c: cat(parts, _FEATURE_DTYPES.get(c, float)) for c, parts in feats.items()},
        all_ic_us=np.concatenate(all_ic) if all_ic else np.empty(0, np.int64),
        horizon_us=horizon,
    )


def _aux_final_us(unit: Unit | None, params: StreamParams) -> int:
    """Time up to which an auxiliary unit's data are final (INF when closed or absent)."""
    if unit is None or unit.closed:
        return INF
    wm = unit.max_end_us - int(params.allowed_lateness_s * 1e6)
    segs = unit.segments(params.gap_periods)
    contiguous = unit.end_of(segs[0][1]) if segs else -INF
    return max(wm, contiguous)


_FEAT_BEFORE_FLIGHT = ("stride_time_s", "cadence_spm", "ground_contact_time_ms", "swing_time_ms")


def _nz_list(x) -> list:
    """Values as Python floats, non-finite -> None (the row form of a float column)."""
    a = np.asarray(x, dtype=float)
    out = a.tolist()
    if not np.isfinite(a).all():
        for i in np.flatnonzero(~np.isfinite(a)).tolist():
            out[i] = None
    return out


# -------------------------------------------------------------------------------------------- assembly
def _aux_columns(
    state: SessionState, foot: str, aux: dict[str, Unit], ic_s, tc_s, nx_s, foot_start_us: int
) -> dict[str, np.ndarray]:
    """Each registered sensor's stride columns (NaN where its unit is absent or does not cover)."""
    n = len(ic_s)
    cols: dict[str, np.ndarray] = {}
    for sensor in STRIDE_SENSORS:
        unit = aux.get(sensor.kind)
        got = {}
        if unit is not None and len(unit.times_us) >= 4:
            t = (unit.times_us - unit.clock_offset_us + foot_start_us) / 1e6  # on the foot's clock
            ref = state.references.setdefault(sensor.kind, {})
            got = sensor.stride_columns(t, unit.data, ic_s, tc_s, nx_s, foot, 1.5 / unit.rate_hz, ref)
        for c in sensor.columns:
            cols[c] = got.get(c, np.full(n, np.nan))
    return cols


def _covered_by(aux_cols: dict[str, np.ndarray], n: int) -> list[str]:
    """The ``sensors`` column: the foot IMU plus every registered kind that covered the stride."""
    names = [np.full(n, FOOT_KIND, dtype=object)]
    for sensor in STRIDE_SENSORS:
        ok = np.isfinite(np.asarray(aux_cols[sensor.covered_by], float))
        names.append(np.where(ok, "," + sensor.kind, ""))
    return [str(x) for x in np.sum(names, axis=0)] if n else []


def _row_values(col: np.ndarray) -> list:
    """Column values for rows: floats with non-finite -> None; other dtypes as they are."""
    return _nz_list(col) if col.dtype.kind == "f" else col.tolist()


def assemble(
    state: SessionState,
    foot: str,
    ic_us: np.ndarray,
    tc_us: np.ndarray,
    next_us: np.ndarray,
    feats: dict[str, np.ndarray],
    other_ic_us: np.ndarray | None,
    aux: dict[str, Unit],
    foot_start_us: int,
) -> list[dict]:
    """Stride rows (schema STRIDES) for strides of one foot in time order; ``aux``: the session's unit
    of each registered sensor kind (:mod:`pipelines.stream.sensors`), whose per-session references
    this updates."""
    n = len(ic_us)
    if n == 0:
        return []
    ic_s = ic_us / 1e6
    nx_s = next_us / 1e6
    tc_s = np.where(tc_us >= 0, tc_us / 1e6, np.nan)
    flight = (
        flight_time_ms(ic_s, tc_s, other_ic_us / 1e6, nx_s)
        if other_ic_us is not None and len(other_ic_us)
        else np.full(n, np.nan)
    )
    aux_cols = _aux_columns(state, foot, aux, ic_s, tc_s, nx_s, foot_start_us)
    # column-wise: one float conversion per column instead of one ``nz`` call per value
    feat_cols = {c: _nz_list(feats[c]) for c in FEATURE_COLUMNS if c not in ("quality_ok", "quality_reason")}
    ic_l = [int(x) for x in ic_us.tolist()]
    tc_l = [int(x) if x >= 0 else None for x in tc_us.tolist()]
    nx_l = [int(x) for x in next_us.tolist()]
    days: dict[int, dt.date] = {}
    for ic in ic_l:
        day = ic // 86_400_000_000
        if day not in days:
            days[day] = _date(ic)
    # column lists in the STRIDES order, then one dict per stride with zip (per-row dict building was
    # a tenth of the science's time)
    columns: dict[str, list] = {
        "runner_id": [state.runner_id] * n,
        "session_id": [state.session_id] * n,
        "foot": [foot] * n,
        "stride_id": [f"{state.session_id}:{foot}:{ic}" for ic in ic_l],
        "ic_time": ic_l,
        "tc_time": tc_l,
        "next_ic_time": nx_l,
        "session_elapsed_s": [(ic - foot_start_us) / 1e6 for ic in ic_l],
        **{c: v for c, v in feat_cols.items() if c in _FEAT_BEFORE_FLIGHT},
        "flight_time_ms": _nz_list(flight),
        **{c: v for c, v in feat_cols.items() if c not in _FEAT_BEFORE_FLIGHT},
        **{c: _row_values(v) for c, v in aux_cols.items()},
        "sensors": _covered_by(aux_cols, n),
        "quality_ok": np.asarray(feats["quality_ok"], bool).tolist(),
        "quality_reason": [r or None for r in feats["quality_reason"]],
        "date": [days[ic // 86_400_000_000] for ic in ic_l],
    }
    names = list(columns)
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    state.strides_emitted += n
    return rows


# ------------------------------------------------------------------------------------------- processor
def _order_check(state: SessionState, item: Item) -> Rejection | None:
    """Issue 13: sequence numbers going backwards and session markers out of order (the decisions are
    :func:`check_sequence_order` / :func:`check_marker_order`); a passing item moves the top."""
    ev = item.event
    t = ev.start_time_us if item.kind == "sensor_block" else ev.timestamp_us
    key = f"{item.kind}|{ev.device_id}"
    top = state.seq_top.get(key)
    bad = check_sequence_order(top, ev.seq, t)
    if bad is None and item.kind == "session_marker":
        starts, ends = state.device_starts_us, state.device_ends_us  # each device's own markers
        bad = check_marker_order(starts.get(ev.device_id), ends.get(ev.device_id), ev.marker, t)
    if bad is None and (top is None or ev.seq > top[0]):
        state.seq_top[key] = (ev.seq, t)
    return bad


def _dedup(state: SessionState, item: Item, out: Output) -> bool:
    ev = item.event
    key = f"{item.kind}|{ev.device_id}"
    ranges = state.seen.setdefault(key, [])
    if _in_ranges(ranges, ev.seq):
        out.count("duplicates_dropped")
        return False
    _add_range(ranges, ev.seq)
    return True


def _units_by(state: SessionState, sensor: str) -> list[Unit]:
    return [u for _, u in sorted(state.units.items()) if u.sensor == sensor]


def _arrival_order(it: Item) -> tuple:
    return (it.kafka_ts_us, it.topic, it.partition, it.offset)


def _fix_unit_start(
    state: SessionState, u: Unit, params: StreamParams, out: Output | None = None, force: bool = False
) -> None:
    """Fix a unit's start once: its device's start marker, or its first sample when no marker came
    within ``start_wait_s`` of its data (``force``: now, the session is ending)."""
    if u.start_us is not None or u.first_block_us is None:
        return
    marker = state.device_starts_us.get(u.device_id)
    if marker is not None:
        u.start_us = marker
    elif force or u.max_end_us - u.first_block_us >= int(params.start_wait_s * 1e6):
        u.start_us = u.first_block_us
        if out is not None:
            out.count("units_without_start_marker")


def _on_marker(state: SessionState, m: SessionMarker, params: StreamParams, out: Output) -> None:
    out.sessions.append(session_row(m))
    out.count("session_markers_accepted")
    if m.marker == "start":
        state.device_starts_us.setdefault(m.device_id, m.timestamp_us)
    else:  # an end marker: the start markers that were coming have come
        state.device_ends_us.setdefault(m.device_id, m.timestamp_us)
    for u in state.units.values():
        _fix_unit_start(state, u, params, out, force=m.marker != "start")


def _is_late(state: SessionState, unit: Unit, b: SensorBlock, params: StreamParams) -> bool:
    return (
        state.closed
        or unit.closed
        or b.start_time_us < unit.frontier_us
        or b.start_time_us < unit.max_end_us - int(params.allowed_lateness_s * 1e6)
        or float(b.sample_rate_hz) != unit.rate_hz
    )


def _accept_block(
    state: SessionState, it: Item, params: StreamParams, out: Output, pending: dict[str, list[SensorBlock]]
) -> None:
    """Admit one block (or mark it late) and update the bookkeeping that later decisions read."""
    b: SensorBlock = it.event
    name = _unit_name(b)
    unit = state.units.get(name)
    if unit is None:
        unit = state.units[name] = Unit(b.sensor, b.side, b.device_id, float(b.sample_rate_hz))
    if _is_late(state, unit, b, params):
        out.late.append(it)
        out.count("late")
        return
    unit.note_block(b.start_time_us, b.end_time_us, int(params.end_contiguous_s * 1e6))
    pending.setdefault(name, []).append(b)
    out.count("blocks_accepted")
    if state.first_sample_us is None or b.start_time_us < state.first_sample_us:
        state.first_sample_us = b.start_time_us
    _fix_unit_start(state, unit, params, out)
    _stall_units(state, params, out)


def _roles(u: Unit) -> str:
    return f"{FOOT_KIND}:{u.side}" if u.sensor == FOOT_KIND else u.sensor


ROLES = (f"{FOOT_KIND}:left", f"{FOOT_KIND}:right", *(s.kind for s in STRIDE_SENSORS))


def _stall_units(state: SessionState, params: StreamParams, out: Output) -> None:
    """Close units that fell ``unit_stall_s`` behind the most advanced one; a role (a foot, a joining
    sensor kind) that sent nothing in that time is absent: strides stop waiting for it."""
    lead = state.last_data_us
    stall = int(params.unit_stall_s * 1e6)
    for u in state.units.values():
        if not u.closed and u.max_end_us < lead - stall:
            u.closed = True
            out.count("units_stalled")
    if state.first_sample_us is not None and lead - state.first_sample_us > stall:
        present = {_roles(u) for u in state.units.values()}
        state.absent_sensors |= {r for r in ROLES if r not in present}


def _end_reached(state: SessionState, params: StreamParams) -> bool:
    """An end marker seen and every unit reached the session's end (its own device's end marker, else
    the latest end of the session in elapsed time), or stopped well before the most advanced unit."""
    if not state.units or not state.device_ends_us:
        return False
    tol = int(params.end_tolerance_s * 1e6)
    lateness = int(params.allowed_lateness_s * 1e6)
    span = int(params.end_contiguous_s * 1e6)
    ends = {d: e - state.device_starts_us.get(d, e) for d, e in state.device_ends_us.items()}
    session_end = max(ends.values())  # elapsed us, devices with their own start marker
    lead = max(u.max_end_us - u.clock_offset_us for u in state.units.values())
    return all(
        (
            u.max_end_us - u.clock_offset_us >= ends.get(u.device_id, session_end) - tol
            and u.tail_contiguous(span, params.gap_periods)
        )
        or u.max_end_us - u.clock_offset_us < lead - lateness
        for u in state.units.values()
    )


def process_session(
    state: SessionState, items: list[Item], params: StreamParams = StreamParams(), force_close: bool = False
) -> Output:
    """Process newly arrived events of a (runner, session): returns rows and late items; mutates ``state``.

    Events are examined in arrival order and each decision (duplicate, late, closed, start fixed, unit
    stalled, end reached, gone quiet) is taken when its event is examined, so the outcome does not
    depend on how the events were split over calls. ``force_close``: the input has ended (a bounded
    pass, or the quiet-gap timer fired): flush everything.
    """
    out = Output()
    pending: dict[str, list[SensorBlock]] = {}
    gap = int(params.session_gap_s * 1e6)
    closing = False
    for it in sorted(items, key=_arrival_order):
        state.partitions.add(it.partition)
        bad = _order_check(state, it)  # issue 13: sequence numbers going backwards, markers out of order
        if bad is not None:
            out.rejected.append((it, bad))
            continue
        if not _dedup(state, it, out):
            continue
        if state.units and not state.closed and not closing and it.kafka_ts_us > state.last_arrival_us + gap:
            closing = True  # it arrived after the session had gone quiet
            out.count("sessions_closed_quiet")
        state.last_arrival_us = max(state.last_arrival_us, it.kafka_ts_us)
        if it.kind == "watch_record":
            out.watch.append(watch_row(it.event))
            out.count("watch_records_accepted")
        elif it.kind == "session_marker":
            _on_marker(state, it.event, params, out)
        elif closing:
            out.late.append(it)
            out.count("late")
        else:
            _accept_block(state, it, params, out, pending)
        closing = closing or (not state.closed and _end_reached(state, params))
    for name, blocks in pending.items():
        state.units[name].append(blocks)
    if state.closed:
        return out
    closing = closing or force_close
    if closing:
        for u in state.units.values():
            _fix_unit_start(state, u, params, force=True)
            u.closed = True
    _emit(state, params, out, closing)
    if closing and state.units:
        state.closed = True
        state.closed_at_us = state.last_arrival_us
        for u in state.units.values():
            u.times_us = np.empty(0, np.int64)
            u.data = np.empty((0, 0), np.float32)
    return out


def _aux_ready_us(state: SessionState, sensor: str, params: StreamParams) -> int:
    """Session-clock time up to which a joining sensor's data are final: INF when closed or absent,
    -INF while it has sent nothing yet or its clock is not aligned. Never "not there yet, so do not
    wait": that answer could change with the next message, and the strides with it."""
    units = _units_by(state, sensor)
    if not units:
        return INF if sensor in state.absent_sensors else -INF
    if any(u.start_us is None for u in units):
        return -INF
    return min(_aux_final_us(u, params) - u.clock_offset_us for u in units)


def _remember_ics(state: SessionState, det: dict[str, FootDetection]) -> None:
    """Keep every final IC of each foot from a little before the earliest pending stride on: a
    stride's flight time needs the other foot's IC inside it, which may be final (and its samples
    trimmed) long before the stride itself is emitted."""
    starts = [int(d.ic_us.min()) for d in det.values() if len(d.ic_us)]
    for side, d in det.items():
        ics = np.unique(np.concatenate([np.asarray(state.recent_ic_us.get(side, []), np.int64), d.all_ic_us]))
        if len(ics):
            keep_from = min(starts, default=int(ics[-1])) - RECENT_IC_KEEP_US
            state.recent_ic_us[side] = [int(x) for x in ics[ics >= keep_from]]


def _emit(state: SessionState, params: StreamParams, out: Output, closing: bool) -> None:
    feet = {u.side: u for u in _units_by(state, FOOT_KIND) if u.side in ("left", "right")}
    if not closing and any(u.start_us is None for u in feet.values()):
        return  # elapsed time and clock alignment need the feet's fixed starts
    aux = {s.kind: u[0] for s in STRIDE_SENSORS if (u := _units_by(state, s.kind))}
    det = {side: detect_foot(u, params, closing) for side, u in feet.items()}
    # session clock: device time minus the unit's clock offset; the stride's windows reach ~0.5 s
    # past its next IC (onset search, interpolation), hence the margin
    aux_final = min([_aux_ready_us(state, s.kind, params) for s in STRIDE_SENSORS] + [INF]) - AUX_MARGIN_US
    first_unemitted: list[int] = []  # session clock
    _remember_ics(state, det)
    for side in ("left", "right"):
        if side not in det:
            continue
        unit, d = feet[side], det[side]
        other_side = "right" if side == "left" else "left"
        other = det.get(other_side)
        if closing or (other is None and f"{FOOT_KIND}:{other_side}" in state.absent_sensors):
            other_final = INF
        else:
            other_final = other.horizon_us if other is not None else -INF
        sel = []
        for k in np.argsort(d.ic_us, kind="stable"):
            if d.ic_us[k] <= unit.last_emitted_ic_us:
                continue
            if not d.stable[k]:
                break
            if not (
                closing or (d.next_us[k] <= other_final and d.next_us[k] - unit.clock_offset_us <= aux_final)
            ):
                break
            sel.append(k)
        if sel:
            sel_a = np.asarray(sel)
            other_ic = np.asarray(state.recent_ic_us[other_side], np.int64) if other is not None else None
            rows = assemble(
                state,
                side,
                d.ic_us[sel_a],
                d.tc_us[sel_a],
                d.next_us[sel_a],
                {c: col[sel_a] for c, col in d.features.items()},
                other_ic,
                aux,
                unit.clock_offset_us,
            )
            out.strides.extend(rows)
            out.count("strides_out", len(rows))
            unit.last_emitted_ic_us = int(d.ic_us[sel_a].max())
        # bounded tail: keep from the last emitted IC (minus pre_s); drop idle stretches
        keep = unit.last_emitted_ic_us - int(params.pre_s * 1e6)
        if len(unit.times_us):
            wm = unit.max_end_us - int(params.allowed_lateness_s * 1e6)
            pending_ic = d.ic_us[d.ic_us > unit.last_emitted_ic_us]
            first_pending = int(pending_ic.min()) if len(pending_ic) else INF
            limit = INF  # never trim past the start of a non-final segment that is not the last one
            segs = unit.segments(params.gap_periods)
            for i, (a, b) in enumerate(segs):
                if unit.end_of(b) < wm and unit.end_of(b) <= first_pending:
                    keep = max(keep, unit.end_of(b))  # final segment, fully emitted: drop
                else:
                    if i < len(segs) - 1:
                        limit = int(unit.times_us[a])
                    break
            if len(pending_ic) == 0:  # no stride in sight (standing, warming up): bounded idle buffer
                idle = int(unit.times_us[-1]) - int(params.max_idle_buffer_s * 1e6)
                keep = max(keep, min(idle, limit))
            keep = min(keep, first_pending - int(params.pre_s * 1e6))
        unit.trim(keep)
        first = int(unit.times_us[0]) if len(unit.times_us) else unit.max_end_us
        first_unemitted.append(first - unit.clock_offset_us)
    # auxiliary units keep data from 1 s before the earliest pending stride (in their own clock)
    for unit in aux.values():
        if not len(unit.times_us):
            continue
        if first_unemitted:
            unit.trim(min(first_unemitted) + unit.clock_offset_us - 1_000_000)
        else:
            unit.trim(int(unit.times_us[-1]) - int(params.max_idle_buffer_s * 1e6))
