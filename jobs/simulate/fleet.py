"""Fleet orchestration: session-by-session event generation (pure) and producing through ``Publisher``.

Stream layout (what the stream job sees)
----------------------------------------
* One ``SensorBlock`` per device per second: foot IMU 200 samples (200 Hz, left and right devices),
  pelvis IMU 100 samples, EMG 100 samples (10 channels); one ``WatchRecord`` per second. Within a
  session, messages go out second by second (watch, foot left, foot right, pelvis, EMG).
* Every device stamps with its own clock: ``device time = true time + offset`` (offset constant within a
  session: watch ~ +-15 ms (GPS), foot/pelvis IMU 20 ms-1.5 s, EMG 50 ms-3 s, either sign; see
  ``truth/devices.parquet``). All devices are switched on at the same true instant, and each one's start
  ``SessionMarker`` and first block carry that instant on its own clock, so
  ``offset(device) - offset(watch) = start marker(device) - start marker(watch)``.
* ``seq``: per device, +1 per data message (blocks / watch records), continuing across sessions;
  markers have their own per-device counter. A dropped message leaves a gap; a duplicate repeats the
  seq (sent right after the original); an out-of-order message is sent after the device's next one.
* Session end: normally every device sends an end marker (the watch's carries totals). A sensor whose
  battery dies stops mid-block (its last block is short) and sends no end marker while the others end
  normally; when the watch dies, every stream stops and there is no end marker at all.
* Production order: profiles first, then day by day; within a day sessions by true start time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from infra.publish import PublishCounts, Publisher
from infra.settings import Paths
from jobs.simulate.plan import PlannedSession, plan_day, plan_runner
from jobs.simulate.signals import (
    BURST_INTEGRAL,
    SessionGait,
    _burst_windows,
    emg_envelopes,
    foot_imu,
    pelvis_imu,
    session_gait,
    watch_series,
)
from jobs.simulate.stories import apply_story, story_for, traits_on
from jobs.simulate.traits import RunnerTraits, draw_traits
from jobs.simulate.truth import TruthWriter
from schemas.events import (
    EMG_CHANNELS,
    IMU_CHANNELS,
    Event,
    RunnerProfile,
    SensorBlock,
    SessionMarker,
    WatchRecord,
)

__all__ = [
    "DEFAULT_REALITIES",
    "NO_REALITIES",
    "DeviceRealities",
    "default_start",
    "SimulationSummary",
    "iter_runner_events",
    "iter_session_events",
    "profile_event",
    "simulate_fleet",
]

FIRMWARE = {"foot_imu": "footpod-2.4.1", "pelvis_imu": "sacrum-1.9.0", "emg": "emgshorts-3.1.2"}
CHUNK_S = 60  # seconds synthesised at once


@dataclass(frozen=True)
class DeviceRealities:
    """Per data message probabilities of device/transport faults."""

    drop: float = 0.005
    duplicate: float = 0.003
    out_of_order: float = 0.003


DEFAULT_REALITIES = DeviceRealities()
NO_REALITIES = DeviceRealities(0.0, 0.0, 0.0)


@dataclass
class SessionStats:
    """Per-session bookkeeping of what was emitted (filled while iterating)."""

    messages: int = 0
    per_device: dict[str, dict] = field(default_factory=dict)


@dataclass
class SimulationSummary:
    """What :func:`simulate_fleet` did.

    Attributes
    ----------
    runners, days, sessions : fleet size and sessions simulated.
    simulated_s : sum of session durations (s of running data).
    wall_s : wall time (s).
    counts : the Publisher's reconciling counts (received = accepted + dead-lettered).
    dropped, duplicated, out_of_order : injected device realities (data messages).
    truth_dir : where the truth Parquet files are.
    """

    runners: int
    days: int
    sessions: int
    simulated_s: float
    wall_s: float
    counts: PublishCounts
    dropped: int
    duplicated: int
    out_of_order: int
    truth_dir: str

    @property
    def messages(self) -> int:
        return self.counts.received

    @property
    def megabytes(self) -> float:
        return self.counts.bytes_sent / 1e6

    @property
    def messages_per_s(self) -> float:
        return self.messages / max(self.wall_s, 1e-9)

    @property
    def mb_per_s(self) -> float:
        return self.megabytes / max(self.wall_s, 1e-9)

    @property
    def realtime_factor(self) -> float:
        """Simulated running time / wall time."""
        return self.simulated_s / max(self.wall_s, 1e-9)


def profile_event(traits: RunnerTraits, updated_at_us: int) -> RunnerProfile:
    """The runner's published profile (HR anchors omitted for ~30 % of runners)."""
    return RunnerProfile(
        runner_id=traits.runner_id,
        seq=0,
        updated_at_us=updated_at_us,
        cohort=traits.cohort,
        sex=traits.sex,
        birth_year_band=traits.birth_year_band,
        time_zone=traits.time_zone,
        resting_hr_bpm=traits.resting_hr_bpm if traits.profile_has_hr else None,
        max_hr_bpm=traits.max_hr_bpm if traits.profile_has_hr else None,
    )


def _rng(session: PlannedSession, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([*session.seed_key, *stream]))


def _opt(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def iter_session_events(
    traits: RunnerTraits,
    session: PlannedSession,
    seq_state: dict[tuple[str, str], int] | None = None,
    realities: DeviceRealities = DEFAULT_REALITIES,
    truth: TruthWriter | None = None,
    stats: SessionStats | None = None,
    on_chunk: Callable[[int], None] | None = None,
    block_s: int = 1,
) -> Iterator[Event]:
    """Yield every event of one session in production order (markers, blocks, watch records).

    Pure: no Kafka, no I/O except the optional ``truth`` writer. Deterministic for a given plan.

    Parameters
    ----------
    seq_state : ``{(device_id, "data"|"marker"): next seq}``, updated in place (pass the same dict for
        consecutive sessions so sequence numbers continue per device).
    realities : drop / duplicate / out-of-order probabilities per data message.
    truth : receives the session's strides, session row and device rows.
    stats : filled with per-device counts.
    on_chunk : called with the number of simulated seconds after each synthesised chunk.
    block_s : seconds of samples per SensorBlock (1 -> 200 foot-IMU samples); watch records stay 1 Hz.
    """
    seq_state = {} if seq_state is None else seq_state
    stats = stats if stats is not None else SessionStats()
    gait = session_gait(traits, session, _rng(session, 0))
    watch = watch_series(gait, _rng(session, 1))
    fault_rng = _rng(session, 2)
    batt_rng = _rng(session, 3)
    n_s = session.duration_s
    devices = session.devices
    death: dict[str, float] = {}
    if session.battery == "watch":
        death = {d.device_id: session.battery_at_s for d in devices}
    elif session.battery == "sensor":
        death = {session.battery_device: session.battery_at_s}
    sensors_all = ["watch", *dict.fromkeys(d.sensor for d in devices[1:])]
    for d in devices:
        stats.per_device[d.device_id] = dict(
            first_seq=seq_state.get((d.device_id, "data"), 0),
            blocks=0,
            dropped=0,
            duplicated=0,
            out_of_order=0,
            end_marker=False,
        )
    battery0 = {
        d.device_id: (
            float(batt_rng.uniform(3, 12)) if d.device_id in death else float(batt_rng.uniform(45, 100))
        )
        for d in devices
    }

    def next_seq(device_id: str, stream: str) -> int:
        k = (device_id, stream)
        s = seq_state.get(k, 0)
        seq_state[k] = s + 1
        return s

    def marker(d, which: str, t_rel_s: float) -> SessionMarker:
        ev = SessionMarker(
            runner_id=traits.runner_id,
            device_id=d.device_id,
            session_id=session.session_id,
            seq=next_seq(d.device_id, "marker"),
            timestamp_us=session.start_us
            + int(round(t_rel_s * 1e6))
            + session.device_offsets_us[d.device_id],
            marker=which,
            source="device",
            sensors=sensors_all if d.sensor == "watch" else [d.sensor],
        )
        if which == "end" and d.sensor == "watch":
            ev.total_elapsed_s = float(n_s)
            ev.total_distance_m = float(watch["distance_m"][-1])
            ev.avg_heart_rate_bpm = float(np.mean(watch["heart_rate_bpm"]))
            run = watch["running"]
            ev.avg_cadence_spm = float(np.mean(watch["cadence_spm"][run])) if run.any() else None
        return ev

    for d in devices:
        stats.messages += 1
        yield marker(d, "start", 0.0)

    held: dict[str, Event] = {}  # out-of-order: held back until the device's next message

    def emit(device_id: str, ev: Event) -> Iterator[Event]:
        st = stats.per_device[device_id]
        st["blocks"] += 1
        u = fault_rng.random()
        if u < realities.drop:
            st["dropped"] += 1
            return
        out = [ev]
        if u < realities.drop + realities.duplicate:
            out.append(ev)
            st["duplicated"] += 1
        elif u < realities.drop + realities.duplicate + realities.out_of_order and device_id not in held:
            held[device_id] = ev
            st["out_of_order"] += 1
            return
        if device_id in held:
            out.append(held.pop(device_id))
        for e in out:
            stats.messages += 1
            yield e

    has_dyn = traits.kit != "watch" or traits.runner_index % 2 == 0
    has_power = traits.kit != "watch"
    chunk_s = block_s * max(1, CHUNK_S // block_s)
    for c0 in range(0, n_s, chunk_s):
        c1 = min(n_s, c0 + chunk_s)
        arrays: dict[str, dict[str, np.ndarray]] = {}
        for d in devices[1:]:
            fs = d.sample_rate_hz
            t = c0 + np.arange(int(round((c1 - c0) * fs))) / fs
            rng = _rng(session, 10 + d.code, c0)
            if d.sensor == "foot_imu":
                arrays[d.device_id] = foot_imu(gait, d.side, t, rng)
            elif d.sensor == "pelvis_imu":
                arrays[d.device_id] = pelvis_imu(gait, t, rng)
            else:
                arrays[d.device_id] = emg_envelopes(gait, t, rng)
        for i in range(c0, c1):
            # a block covers [b0, b1) and is sent once its last second has been recorded
            b0 = c0 + (i - c0) // block_s * block_s
            b1 = min(b0 + block_s, c1)
            for d in devices:
                is_watch = d.sensor == "watch"
                if not is_watch and i != b1 - 1:
                    continue
                t0 = i if is_watch else b0
                dead_at = death.get(d.device_id)
                if dead_at is not None and t0 >= dead_at:
                    continue
                batt = battery0[d.device_id]
                if dead_at is not None:
                    batt_pct = int(max(0, round(batt * (1 - t0 / dead_at))))
                else:
                    batt_pct = int(round(batt - 15 * t0 / 3600))
                t_dev = session.start_us + t0 * 1_000_000 + session.device_offsets_us[d.device_id]
                seq = next_seq(d.device_id, "data")
                if is_watch:
                    running = bool(watch["running"][i])
                    ev: Event = WatchRecord(
                        runner_id=traits.runner_id,
                        device_id=d.device_id,
                        session_id=session.session_id,
                        seq=seq,
                        timestamp_us=t_dev,
                        heart_rate_bpm=int(watch["heart_rate_bpm"][i]),
                        speed_m_s=float(watch["speed_m_s"][i]),
                        distance_m=float(watch["distance_m"][i]),
                        cadence_spm=float(watch["cadence_spm"][i]),
                    )
                    if has_dyn and running:
                        ev.ground_contact_time_ms = float(watch["ground_contact_time_ms"][i])
                        ev.ground_contact_balance_left_pct = float(
                            watch["ground_contact_balance_left_pct"][i]
                        )
                        ev.vertical_oscillation_mm = float(watch["vertical_oscillation_mm"][i])
                        ev.vertical_ratio_pct = float(watch["vertical_ratio_pct"][i])
                        ev.step_length_mm = float(watch["step_length_mm"][i])
                    if has_power:
                        ev.power_w = float(watch["power_w"][i])
                else:
                    fs = d.sample_rate_hz
                    lo = int(round((b0 - c0) * fs))
                    n = int(round((b1 - b0) * fs))
                    if dead_at is not None and dead_at < b1:
                        n = max(1, int((dead_at - b0) * fs))  # dies mid-block
                    chans = {k: v[lo : lo + n] for k, v in arrays[d.device_id].items()}
                    units = IMU_CHANNELS if d.sensor != "emg" else EMG_CHANNELS
                    ev = SensorBlock(
                        runner_id=traits.runner_id,
                        device_id=d.device_id,
                        session_id=session.session_id,
                        seq=seq,
                        sensor=d.sensor,
                        side=d.side,
                        start_time_us=t_dev,
                        sample_rate_hz=fs,
                        n_samples=n,
                        channels=chans,
                        units=dict(units),
                        battery_pct=batt_pct,
                        firmware=FIRMWARE[d.sensor],
                    )
                yield from emit(d.device_id, ev)
        if on_chunk is not None:
            on_chunk(c1 - c0)
    for device_id in list(held):
        stats.messages += 1
        yield held.pop(device_id)
    if session.battery != "watch":
        for d in devices:
            if d.device_id in death:
                continue
            stats.per_device[d.device_id]["end_marker"] = True
            stats.messages += 1
            yield marker(d, "end", float(n_s))
    if truth is not None:
        _write_truth(truth, traits, session, gait, watch, stats, seq_state, death)


def _write_truth(
    truth: TruthWriter,
    traits: RunnerTraits,
    session: PlannedSession,
    gait: SessionGait,
    watch: dict,
    stats: SessionStats,
    seq_state: dict,
    death: dict[str, float],
) -> None:
    cols: dict[str, list] = {}
    counts = {}
    for side in ("left", "right"):
        fe = gait.foot(side)
        k = len(fe.ic) - 1
        counts[side] = max(k, 0)
        if k <= 0:
            continue
        ic, nic, tc = fe.ic[:-1], fe.ic[1:], fe.tc[1:]
        stride = nic - ic
        dev = next((d for d in session.devices if d.sensor == "foot_imu" and d.side == side), None)
        off = session.device_offsets_us[dev.device_id] if dev else 0
        ic_us = session.start_us + np.round(ic * 1e6).astype(np.int64)
        tc_us = session.start_us + np.round(tc * 1e6).astype(np.int64)
        nic_us = session.start_us + np.round(nic * 1e6).astype(np.int64)
        dead = death.get(dev.device_id, np.inf) if dev else np.inf
        integ = {}
        for m in ("gluteus_maximus", "hamstrings", "gastrocnemius"):
            on, offs = _burst_windows(fe, m)
            integ[m] = fe.amp[m][:-1] * BURST_INTEGRAL * (offs[:-1] - on[:-1])
        share = integ["gluteus_maximus"] / (
            integ["gluteus_maximus"] + integ["hamstrings"] + integ["gastrocnemius"]
        )
        emg = "emg" in traits.sensors
        pelvis = "pelvis_imu" in traits.sensors
        nan = np.full(k, np.nan)
        row = {
            "runner_id": [traits.runner_id] * k,
            "session_id": [session.session_id] * k,
            "foot": [side] * k,
            "stride_index": np.arange(k, dtype=np.int32),
            "ic_time": ic_us,
            "tc_time": tc_us,
            "next_ic_time": nic_us,
            "device_id": [dev.device_id if dev else None] * k,
            "device_offset_us": np.full(k, off, dtype=np.int64),
            "ic_device_time_us": ic_us + off,
            "tc_device_time_us": tc_us + off,
            "recorded": (nic < dead) & (dev is not None),
            "session_elapsed_s": ic,
            "stride_time_s": stride,
            "cadence_spm": 120.0 / stride,
            "ground_contact_time_ms": 1000 * (tc - ic),
            "swing_time_ms": 1000 * (nic - tc),
            "foot_strike_angle_deg": fe.strike_deg[:-1],
            "push_off_peak_deg_s": fe.P[1:],
            "swing_min_deg_s": -fe.S[1:],
            "impact_amplitude_m_s2": fe.impact[:-1],
            "pelvic_drop_deg": fe.pelvic_drop_deg[:-1] if pelvis else nan,
            "vertical_oscillation_mm": np.full(k, 10 * gait.vo_cm) if pelvis else nan,
            "glute_share": share if emg else nan,
            "glute_onset_ms": 1000 * fe.glute_onset_s[:-1] if emg else nan,
            "hamstring_onset_ms": 1000 * fe.ham_onset_s[:-1] if emg else nan,
            "recruitment_inverted": (fe.glute_onset_s[:-1] > fe.ham_onset_s[:-1])
            if emg
            else np.full(k, None),
            "fatigue": fe.fatigue[:-1],
        }
        for m in ("gluteus_maximus", "gluteus_medius", "hamstrings", "gastrocnemius", "vastus_lateralis"):
            row[f"{m}_peak_uv"] = fe.amp[m][:-1] if emg else nan
        for key, v in row.items():
            cols.setdefault(key, []).append(np.asarray(v) if not isinstance(v, list) else v)
    if cols:
        merged = {
            key: (sum(parts, []) if isinstance(parts[0], list) else np.concatenate(parts))
            for key, parts in cols.items()
        }
        truth.write_strides(merged)
    per = stats.per_device
    run = watch["running"]
    truth.add_session(
        {
            "runner_id": traits.runner_id,
            "session_id": session.session_id,
            "kind": session.kind,
            "local_date": session.local_date,
            "time_zone": traits.time_zone,
            "start_time": dt.datetime.fromtimestamp(session.start_us / 1e6, dt.UTC),
            "end_time": dt.datetime.fromtimestamp(session.end_us / 1e6, dt.UTC),
            "duration_s": session.duration_s,
            "distance_m": float(watch["distance_m"][-1]),
            "mean_speed_m_s": session.mean_speed_m_s,
            "spike": session.spike,
            "longest_prev_30d_m": _opt(session.longest_prev_30d_m),
            "kit": traits.kit,
            "sensors": ",".join(traits.sensors),
            "battery": session.battery,
            "battery_device": session.battery_device,
            "battery_at_s": session.battery_at_s,
            "strides_left": counts["left"],
            "strides_right": counts["right"],
            "mean_cadence_spm": float(np.mean(gait.cadence_spm[run])) if run.any() else None,
            "mean_heart_rate_bpm": float(np.mean(watch["heart_rate_bpm"])),
            "max_fatigue": float(np.max(gait.fatigue)),
            "messages": stats.messages,
            "dropped": sum(p["dropped"] for p in per.values()),
            "duplicated": sum(p["duplicated"] for p in per.values()),
            "out_of_order": sum(p["out_of_order"] for p in per.values()),
        }
    )
    truth.add_devices(
        [
            {
                "runner_id": traits.runner_id,
                "session_id": session.session_id,
                "device_id": d.device_id,
                "sensor": d.sensor,
                "side": d.side,
                "sample_rate_hz": d.sample_rate_hz,
                "clock_offset_us": session.device_offsets_us[d.device_id],
                "first_seq": per[d.device_id]["first_seq"],
                "last_seq": seq_state.get((d.device_id, "data"), 0) - 1,
                "blocks": per[d.device_id]["blocks"],
                "dropped": per[d.device_id]["dropped"],
                "duplicated": per[d.device_id]["duplicated"],
                "out_of_order": per[d.device_id]["out_of_order"],
                "died_at_s": death.get(d.device_id),
                "start_marker": True,
                "end_marker": per[d.device_id]["end_marker"],
            }
            for d in session.devices
        ]
    )


def iter_runner_events(
    traits: RunnerTraits,
    day: dt.date,
    *,
    seed: int = 0,
    duration_scale: float = 1.0,
    seq_state: dict[tuple[str, str], int] | None = None,
    realities: DeviceRealities = DEFAULT_REALITIES,
    block_s: int = 1,
) -> Iterator[Event]:
    """Every event of one runner on one local date (no Kafka): start markers, blocks, watch records,
    end markers. The same ``(traits, day, seed, duration_scale)`` always yields the same events.

    Examples
    --------
    >>> tr = draw_traits(seed=7, runner_index=0)
    >>> events = list(iter_runner_events(tr, dt.date(2025, 3, 1), seed=7, duration_scale=0.05))
    """
    seq_state = {} if seq_state is None else seq_state
    for session in plan_day(traits, day, seed, duration_scale):
        yield from iter_session_events(traits, session, seq_state, realities, block_s=block_s)


def default_start(days: int, today: dt.date | None = None) -> dt.date:
    """First simulated date so the period ends yesterday (UTC): data is never in the future."""
    today = today or dt.datetime.now(dt.UTC).date()
    return today - dt.timedelta(days=days)


def simulate_fleet(
    bootstrap: str,
    paths: Paths,
    runners: int,
    days: int,
    start: dt.date | None = None,
    seed: int = 0,
    progress: bool = True,
    duration_scale: float = 1.0,
    realities: DeviceRealities = DEFAULT_REALITIES,
    publisher_stage: str = "simulate",
    block_s: int = 1,
    stories: bool = False,
    publisher: Publisher | None = None,
) -> SimulationSummary:
    """Simulate ``runners`` runners over ``days`` local dates and produce every event through
    :class:`~infra.publish.Publisher` (validated, keyed by runner); write truth to ``paths.truth``.

    Memory stays bounded: sessions are generated, published and written to truth one at a time
    (signals in 60 s chunks). Same arguments -> byte-identical events and truth files.

    Parameters
    ----------
    bootstrap : Kafka bootstrap servers.
    paths : data directory (truth goes to ``paths.truth``).
    runners, days : fleet size and number of local dates.
    start : first local date (default: ``days`` days before today UTC).
    seed : fleet seed.
    progress : show a rich progress bar.
    duration_scale : multiplies planned session durations (1.0 = 25-95 min sessions).
    realities : device fault probabilities.
    block_s : seconds of samples per SensorBlock (integer 1-10).
    stories : give the first runners the storylines of :mod:`jobs.simulate.stories` (a distance spike,
        rising calf dominance, pelvic drop, asymmetry, chronic glute under-activation).
    publisher : what to publish through instead of a Publisher on ``bootstrap`` (e.g. a
        :class:`gateway.client.GatewayClient`: the fleet through the HTTP gateway).
    """
    if not 1 <= int(block_s) <= 10:
        raise ValueError("block_s must be an integer number of seconds in 1..10")
    block_s = int(block_s)
    if runners < 1 or days < 1:
        raise ValueError("runners and days must be >= 1")
    start = start or default_start(days)
    end_limit = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    if start + dt.timedelta(days=days) > end_limit:
        raise ValueError(
            f"the simulated period {start} .. {start + dt.timedelta(days=days - 1)} lies in the future: "
            "events more than 24 h ahead are rejected at the door; choose an earlier --start"
        )
    t_wall = time.perf_counter()
    story = {i: story_for(i, stories) for i in range(runners)}
    fleet = [apply_story(draw_traits(seed, i), story[i]) for i in range(runners)]
    last_day = start + dt.timedelta(days=days - 1)
    plans = {}
    for tr in fleet:
        st = story[tr.runner_index]
        spike = (
            (st.spike_days_before_end, st.spike_factor)
            if st and st.spike_days_before_end is not None
            else None
        )
        plans[tr.runner_id] = plan_runner(tr, start, days, seed, duration_scale, spike)
    by_day: dict[dt.date, list[tuple[PlannedSession, RunnerTraits]]] = {}
    for tr in fleet:
        for s in plans[tr.runner_id]:
            by_day.setdefault(s.local_date, []).append((s, tr))
    n_sessions = sum(len(v) for v in by_day.values())
    total_s = sum(s.duration_s for v in by_day.values() for s, _ in v)
    profile_time = (
        int(dt.datetime.combine(start, dt.time(0), tzinfo=dt.UTC).timestamp() * 1e6) - 86_400_000_000
    )
    seq_state: dict[tuple[str, str], int] = {}
    dropped = duplicated = out_of_order = 0
    simulated = 0.0

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from jobs.console import console

    bar = Progress(
        TextColumn("[bold]simulate[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not progress,
        transient=False,
    )
    with (
        TruthWriter(paths.truth) as truth,
        publisher or Publisher(bootstrap, publisher_stage, producer_process=True) as pub,
        bar,
    ):
        task = bar.add_task("simulate", total=total_s, info="")
        truth.write_runners([tr.to_row() for tr in fleet])
        for tr in fleet:
            pub.publish(profile_event(tr, profile_time))
        for day in sorted(by_day):
            for session, tr in sorted(by_day[day], key=lambda x: (x[0].start_us, x[1].runner_id)):
                stats = SessionStats()

                def advance(sec: int, _pub=pub) -> None:
                    c = _pub.counts
                    bar.update(
                        task,
                        advance=sec,
                        info=f"{c.received:,} msgs  {c.bytes_sent / 1e6:,.0f} MB",
                    )

                today = traits_on(tr, story[tr.runner_index], session.local_date, last_day)
                for ev in iter_session_events(
                    today, session, seq_state, realities, truth, stats, advance, block_s
                ):
                    pub.publish(ev)
                simulated += session.duration_s
                for p in stats.per_device.values():
                    dropped += p["dropped"]
                    duplicated += p["duplicated"]
                    out_of_order += p["out_of_order"]
        pub.flush()
    return SimulationSummary(
        runners=runners,
        days=days,
        sessions=n_sessions,
        simulated_s=simulated,
        wall_s=time.perf_counter() - t_wall,
        counts=pub.counts,
        dropped=dropped,
        duplicated=duplicated,
        out_of_order=out_of_order,
        truth_dir=str(paths.truth),
    )
