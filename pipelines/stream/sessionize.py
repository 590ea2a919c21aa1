"""Event-time processing of one (runner, session): order, dedup, late data, gaps, stride segmentation with
carry-over state, and feature assembly. Pure Python/numpy (no Beam): the Beam DoFn in
:mod:`pipelines.stream.transforms` is a thin wrapper, and the offline reference uses the same assembly.

Policy (all times are device event time, microseconds)
------------------------------------------------------
* **Units**: one buffer per sensor unit ``(sensor, side, device_id)`` of the session.
* **Duplicates**: same ``(kind, device_id, seq)`` seen before (in this batch or any earlier one: the seen
  sequence numbers are carried as ranges) -> dropped and counted, not dead-lettered.
* **Late**: blocks are examined in Kafka offset order (a runner's events share one partition). A block is
  late when it starts before ``max_end_seen(unit) - allowed_lateness`` or before the unit's consumed
  frontier, or its unit/session is already closed -> dead letter ``late``. Because the rule uses offset
  order, not batch boundaries, the decision is the same however the stream is cut into batches.
* **Gaps**: samples further apart than 1.5 sample periods split a unit into segments; strides are
  detected per segment, so no stride spans a gap. A gap becomes permanent once the unit's watermark
  (``max_end_seen - allowed_lateness``) has passed it.
* **Strides and carry-over**: the foot detector runs over the unit's buffered samples. A stride is final
  when its next IC is at least ``guard_s`` before the end of its (still open) segment, or its segment is
  final. Emitted strides advance ``last_emitted_ic_us``; the buffer keeps samples from
  ``last_emitted_ic - pre_s`` on (the last complete stride's IC, so the next swing is seen again), i.e. a
  bounded tail: work per batch does not grow with session length.
* **Joins**: a foot stride waits until the other foot's detection, the pelvis IMU and the EMG are final over
  ``[IC, next IC]`` (or those units are closed/absent), at most ``aux_wait_s`` of its own unit's event time.
* **Closing**: a session closes when its end marker has been seen and every unit reached it (its last
  block arrived: ``max_end - clock_offset >= end - end_tolerance_s``, no hole in its last
  ``end_contiguous_s``) or stopped more than ``allowed_lateness_s`` before the session's most advanced
  unit (a dead battery: such a unit never reaches the end), or when it went quiet: blocks that arrived
  in its partition **after its own last block** (by offset) reach ``session_gap_s + allowed_lateness_s``
  past its last data. Counting only later arrivals matters: runners sharing a partition upload at
  different event times (a replayed backlog, a watch syncing late), and another runner's newer blocks
  that arrived *before* this session's would otherwise close it while its blocks are still coming.
  Closing flushes every remaining stride; later blocks are late.
"""

from __future__ import annotations

import datetime as dt
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np

from pipelines.science.emg import (
    MUSCLE_COLUMNS,
    EmgReference,
    activation_onset_ms,
    posterior_chain_shares,
    stride_emg_means,
)
from pipelines.science.gait import detect_gait_events
from pipelines.science.pelvis import stride_pelvis_features
from pipelines.science.stride_features import FEATURE_COLUMNS, compute_stride_features, flight_time_ms
from schemas.events import (
    EMG_CHANNELS,
    IMU_CHANNELS,
    SensorBlock,
    SessionMarker,
    WatchRecord,
    sample_offsets_us,
)
from schemas.validate import Rejection, check_marker_order, check_sequence_order

INF = np.iinfo(np.int64).max // 4
IMU_ORDER = tuple(IMU_CHANNELS)  # acc_x, acc_y, acc_z, gyr_x, gyr_y, gyr_z
EMG_ORDER = tuple(EMG_CHANNELS)


@dataclass(frozen=True)
class StreamParams:
    """Event-time policy of the stream job (seconds)."""

    allowed_lateness_s: float = 30.0
    guard_s: float = 1.0
    pre_s: float = 0.2
    aux_wait_s: float = 60.0
    session_gap_s: float = 120.0
    end_tolerance_s: float = 0.5  # less than one block: the last block must have arrived
    end_contiguous_s: float = 5.0  # ... and the unit's last seconds must have no hole
    closed_retention_s: float = 6 * 3600.0
    gap_periods: float = 1.5
    max_idle_buffer_s: float = 10.0


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
    #: device clock minus session clock: first block start - start marker (all devices start together)
    clock_offset_us: int = 0
    first_block_us: int | None = None

    @property
    def watermark_us(self) -> int:
        return self.max_end_us  # shifted by the allowed lateness by callers

    def append(self, blocks: list[SensorBlock]) -> None:
        order = EMG_ORDER if self.sensor == "emg" else IMU_ORDER
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
    """Everything carried between batches for one (runner, session)."""

    runner_id: str
    session_id: str
    units: dict[str, Unit] = field(default_factory=dict)
    seen: dict[str, list[list[int]]] = field(default_factory=dict)  # "kind|device" -> seq ranges
    start_marker_us: int | None = None
    end_marker_us: int | None = None
    first_sample_us: int | None = None
    recent_ic_us: dict[str, list[int]] = field(default_factory=dict)  # foot -> last emitted ICs
    emg_ref: dict[str, list[float]] = field(default_factory=dict)  # "<muscle>_<side>" -> first N means
    strides_emitted: int = 0
    closed: bool = False
    closed_at_us: int | None = None
    partitions: set[int] = field(default_factory=set)  # Kafka partition indices its events came from
    block_offsets: dict[int, int] = field(default_factory=dict)  # partition -> offset of its last block
    ends_after: dict[int, int] = field(default_factory=dict)  # partition -> newest block end after it
    seq_top: dict[str, tuple[int, int]] = field(default_factory=dict)  # "kind|device" -> (seq, time us)

    @property
    def home_partition(self) -> int:
        """The partition index that owns this key when batches are sharded (-1: none seen yet)."""
        return min(self.partitions) if self.partitions else -1

    def to_bytes(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def from_bytes(blob: bytes) -> SessionState:
        state = pickle.loads(blob)
        for f in fields(SessionState):  # state carried by an older version lacks newer fields
            if f.name not in state.__dict__:
                setattr(state, f.name, f.default_factory() if f.default_factory is not MISSING else f.default)
        return state

    @property
    def session_start_us(self) -> int | None:
        return self.start_marker_us if self.start_marker_us is not None else self.first_sample_us

    @property
    def last_data_us(self) -> int:
        return max([u.max_end_us for u in self.units.values()] + [-INF])


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
def assemble(
    state: SessionState,
    foot: str,
    ic_us: np.ndarray,
    tc_us: np.ndarray,
    next_us: np.ndarray,
    feats: dict[str, np.ndarray],
    other_ic_us: np.ndarray | None,
    pelvis: Unit | None,
    emg: Unit | None,
    foot_offset_us: int = 0,
) -> list[dict]:
    """Stride rows (schema STRIDES) for strides of one foot in time order; updates the EMG reference."""
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
    vo = drop = np.full(n, np.nan)
    if pelvis is not None and len(pelvis.times_us) >= 4:
        t = (pelvis.times_us - pelvis.clock_offset_us + foot_offset_us) / 1e6
        vo, drop = stride_pelvis_features(
            t, pelvis.data[:, 0:3], pelvis.data[:, 3:6], ic_s, tc_s, nx_s, foot, 1.5 / pelvis.rate_hz
        )
    emg_cols: dict[str, np.ndarray] = {}
    g_on = h_on = np.full(n, np.nan)
    raw: dict[str, np.ndarray] = {}
    if emg is not None and len(emg.times_us) >= 4:
        t = (emg.times_us - emg.clock_offset_us + foot_offset_us) / 1e6
        for muscle, col in MUSCLE_COLUMNS.items():
            ch = EMG_ORDER.index(f"{muscle}_{foot}")
            env = emg.data[:, ch].astype(float)
            means = stride_emg_means(t, env, ic_s, nx_s, 1.5 / emg.rate_hz)
            raw[muscle] = means
            ref = EmgReference(values=state.emg_ref.setdefault(f"{muscle}_{foot}", []))
            emg_cols[f"{col}_act_norm"] = ref.normalise(means)
            if muscle == "gluteus_maximus":
                g_on = np.where(np.isfinite(means), activation_onset_ms(t, env, ic_s, nx_s), np.nan)
            if muscle == "hamstrings":
                h_on = np.where(np.isfinite(means), activation_onset_ms(t, env, ic_s, nx_s), np.nan)
    share, ham_share, calf_share = (
        posterior_chain_shares(raw["gluteus_maximus"], raw["hamstrings"], raw["gastrocnemius"])
        if raw
        else (np.full(n, np.nan),) * 3
    )
    start = state.session_start_us
    # column-wise: one float conversion per column instead of one ``nz`` call per value
    feat_cols = {c: _nz_list(feats[c]) for c in FEATURE_COLUMNS if c not in ("quality_ok", "quality_reason")}
    ic_l = [int(x) for x in ic_us.tolist()]
    tc_l = [int(x) if x >= 0 else None for x in tc_us.tolist()]
    nx_l = [int(x) for x in next_us.tolist()]
    flight_l, vo_l, drop_l = _nz_list(flight), _nz_list(vo), _nz_list(drop)
    emg_l = {
        f"{col}_act_norm": _nz_list(emg_cols[f"{col}_act_norm"]) if emg_cols else [None] * n
        for col in MUSCLE_COLUMNS.values()
    }
    share_l, g_l, h_l = _nz_list(share), _nz_list(g_on), _nz_list(h_on)
    ham_share_l, calf_share_l = _nz_list(ham_share), _nz_list(calf_share)
    vo_ok = np.isfinite(np.asarray(vo, float))
    emg_ok = np.isfinite(raw["gluteus_maximus"]) if raw else np.zeros(n, bool)
    sensors_l = [
        "foot_imu,pelvis_imu,emg"
        if p and e
        else "foot_imu,pelvis_imu"
        if p
        else "foot_imu,emg"
        if e
        else "foot_imu"
        for p, e in zip(vo_ok.tolist(), emg_ok.tolist(), strict=True)
    ]
    inv_l = [bool(h < g) if g is not None and h is not None else None for g, h in zip(g_l, h_l, strict=True)]
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
        "session_elapsed_s": [(ic - start) / 1e6 for ic in ic_l] if start is not None else [None] * n,
        **{c: v for c, v in feat_cols.items() if c in _FEAT_BEFORE_FLIGHT},
        "flight_time_ms": flight_l,
        **{c: v for c, v in feat_cols.items() if c not in _FEAT_BEFORE_FLIGHT},
        "vertical_oscillation_mm": vo_l,
        "pelvic_drop_deg": drop_l,
        **emg_l,
        "glute_share": share_l,
        "hamstring_share": ham_share_l,
        "calf_share": calf_share_l,
        "glute_onset_ms": g_l,
        "hamstring_onset_ms": h_l,
        "recruitment_inverted": inv_l,
        "sensors": sensors_l,
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
        bad = check_marker_order(state.start_marker_us, state.end_marker_us, ev.marker, t)
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


def _tail_contiguous(u: Unit, params: StreamParams) -> bool:
    """No sampling gap in the unit's last ``end_contiguous_s`` (out-of-order blocks still missing)."""
    if not len(u.times_us):
        return True
    i = int(np.searchsorted(u.times_us, u.times_us[-1] - int(params.end_contiguous_s * 1e6)))
    return not (np.diff(u.times_us[i:]) > params.gap_periods * 1e6 / u.rate_hz).any()


def _units_by(state: SessionState, sensor: str) -> list[Unit]:
    return [u for _, u in sorted(state.units.items()) if u.sensor == sensor]


@dataclass
class PartitionEnds:
    """Sensor-block end times (us) of one partition in one batch, in offset order, as suffix maxima:
    ``after(o)`` is the newest event time among the blocks that arrived after offset ``o``."""

    offsets: np.ndarray  # int64, ascending
    suffix_max_us: np.ndarray  # int64, suffix_max_us[i] = max(end_us[i:])

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, int]]) -> PartitionEnds:
        arr = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
        return cls(arr[:, 0], np.maximum.accumulate(arr[::-1, 1])[::-1].copy())

    def after(self, offset: int) -> int:
        i = int(np.searchsorted(self.offsets, offset, side="right"))
        return int(self.suffix_max_us[i]) if i < len(self.offsets) else -INF


def _ends_after_last_block(state: SessionState, items: list[Item], ends: Mapping[int, PartitionEnds]) -> int:
    """Newest block end (us) that arrived in the session's partitions after its own last block, over
    this and earlier batches (carried in ``state.ends_after``)."""
    for p in {it.partition for it in items} | set(state.block_offsets):
        mine = [it.offset for it in items if it.kind == "sensor_block" and it.partition == p]
        if mine:
            state.block_offsets[p] = max(mine + [state.block_offsets.get(p, -1)])
            state.ends_after[p] = -INF
        if p in state.block_offsets and p in ends:
            state.ends_after[p] = max(state.ends_after.get(p, -INF), ends[p].after(state.block_offsets[p]))
    return max(state.ends_after.values(), default=-INF)


def process_session(
    state: SessionState,
    items: list[Item],
    partition_watermark_us: int,
    params: StreamParams = StreamParams(),
    force_close: bool = False,
    partition_ends: Mapping[int, PartitionEnds] | None = None,
) -> Output:
    """Process one batch of a (runner, session): returns rows and late items; mutates ``state``.

    ``partition_watermark_us``: event-time watermark of the session's partition(s) (max block end minus
    the allowed lateness). ``partition_ends``: this batch's block ends per partition in offset order,
    for the quiet rule (``None``: an offline pass, where the partition watermark decides alone).
    """
    out = Output()
    quiet_wm_us = (
        partition_watermark_us
        if partition_ends is None
        else _ends_after_last_block(state, items, partition_ends) - int(params.allowed_lateness_s * 1e6)
    )
    lateness = int(params.allowed_lateness_s * 1e6)
    items = sorted(items, key=lambda it: (it.partition, it.offset))
    pending: dict[str, list[SensorBlock]] = {}
    for it in items:
        bad = _order_check(state, it)  # issue 13
        if bad is not None:
            out.rejected.append((it, bad))
            continue
        if not _dedup(state, it, out):
            continue
        ev = it.event
        if it.kind == "watch_record":
            out.watch.append(watch_row(ev))
            out.count("watch_records_accepted")
            continue
        if it.kind == "session_marker":
            out.sessions.append(session_row(ev))
            out.count("session_markers_accepted")
            if ev.marker == "start":
                state.start_marker_us = ev.timestamp_us
            else:
                state.end_marker_us = ev.timestamp_us
            continue
        name = _unit_name(ev)
        unit = state.units.get(name)
        if unit is None:
            unit = state.units[name] = Unit(ev.sensor, ev.side, ev.device_id, float(ev.sample_rate_hz))
        late = (
            state.closed
            or unit.closed
            or ev.start_time_us < unit.frontier_us
            or ev.start_time_us < unit.max_end_us - lateness
            or float(ev.sample_rate_hz) != unit.rate_hz
        )
        if late:
            out.late.append(it)
            out.count("late")
            continue
        unit.max_end_us = max(unit.max_end_us, ev.end_time_us)
        if unit.first_block_us is None or ev.start_time_us < unit.first_block_us:
            unit.first_block_us = ev.start_time_us
        pending.setdefault(name, []).append(ev)
        out.count("blocks_accepted")
        if state.first_sample_us is None or ev.start_time_us < state.first_sample_us:
            state.first_sample_us = ev.start_time_us
    for name, blocks in pending.items():
        state.units[name].append(blocks)

    if state.closed:
        return out
    if state.start_marker_us is not None:
        for u in state.units.values():
            if u.last_emitted_ic_us == -INF and u.first_block_us is not None:  # fixed before first use
                u.clock_offset_us = u.first_block_us - state.start_marker_us

    # closing rule
    closing = force_close
    if state.units and state.end_marker_us is not None:
        tol = int(params.end_tolerance_s * 1e6)
        # a unit whose data stopped more than the allowed lateness before the session's most advanced
        # unit (battery died, sensor removed) never reaches the end marker: it must not hold the session
        # (and every pending stride of the other units) open until the partition watermark moves on
        lead = max(u.max_end_us - u.clock_offset_us for u in state.units.values())
        closing = closing or all(
            (u.max_end_us - u.clock_offset_us >= state.end_marker_us - tol and _tail_contiguous(u, params))
            or u.max_end_us - u.clock_offset_us < lead - lateness
            for u in state.units.values()
        )
    if state.units and quiet_wm_us >= state.last_data_us + int(params.session_gap_s * 1e6):
        closing = True
    if closing:
        for u in state.units.values():
            u.closed = True

    _emit(state, params, out, closing)

    if closing:
        state.closed = True
        state.closed_at_us = state.last_data_us
        for u in state.units.values():
            u.times_us = np.empty(0, np.int64)
            u.data = np.empty((0, 0), np.float32)
    return out


def _emit(state: SessionState, params: StreamParams, out: Output, closing: bool) -> None:
    feet = {u.side: u for u in _units_by(state, "foot_imu") if u.side in ("left", "right")}
    pelvis = next(iter(_units_by(state, "pelvis_imu")), None)
    emg = next(iter(_units_by(state, "emg")), None)
    det = {side: detect_foot(u, params, closing) for side, u in feet.items()}
    # auxiliary data final up to (in foot-clock terms, offsets are at most a few seconds: add a margin)
    aux_final = min(_aux_final_us(pelvis, params), _aux_final_us(emg, params)) - 5_000_000
    aux_wait = int(params.aux_wait_s * 1e6)
    first_unemitted: list[int] = []
    for side in ("left", "right"):
        if side not in det:
            continue
        unit, d = feet[side], det[side]
        other_side = "right" if side == "left" else "left"
        other = det.get(other_side)
        other_final = INF if other is None or closing else other.horizon_us
        own_wm = unit.max_end_us - int(params.allowed_lateness_s * 1e6)
        sel = []
        for k in np.argsort(d.ic_us, kind="stable"):
            if d.ic_us[k] <= unit.last_emitted_ic_us:
                continue
            if not d.stable[k]:
                break
            ready = closing or (d.next_us[k] <= other_final and d.next_us[k] <= aux_final)
            if not ready and own_wm < d.next_us[k] + aux_wait:
                break
            sel.append(k)
        if sel:
            sel_a = np.asarray(sel)
            other_ic = None
            if other is not None:
                other_ic = np.unique(
                    np.concatenate(
                        [np.asarray(state.recent_ic_us.get(other_side, []), np.int64), other.all_ic_us]
                    )
                )
            rows = assemble(
                state,
                side,
                d.ic_us[sel_a],
                d.tc_us[sel_a],
                d.next_us[sel_a],
                {c: col[sel_a] for c, col in d.features.items()},
                other_ic,
                pelvis,
                emg,
                unit.clock_offset_us,
            )
            out.strides.extend(rows)
            out.count("strides_out", len(rows))
            unit.last_emitted_ic_us = int(d.ic_us[sel_a].max())
            recent = state.recent_ic_us.setdefault(side, [])
            recent.extend(int(x) for x in d.ic_us[sel_a])
            del recent[:-8]
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
        first_unemitted.append(int(unit.times_us[0]) if len(unit.times_us) else unit.max_end_us)
    # auxiliary units keep data from 1 s before the earliest pending stride
    for aux in (pelvis, emg):
        if aux is None or not len(aux.times_us):
            continue
        if first_unemitted:
            aux.trim(min(first_unemitted) - 1_000_000)
        else:
            aux.trim(int(aux.times_us[-1]) - int(params.max_idle_buffer_s * 1e6))
