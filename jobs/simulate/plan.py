"""Training plans: which sessions each runner runs on which local day, and device realities per session.

A plan is drawn per runner and local date from its own random stream, so it depends neither on the fleet
size nor on the simulated date range. Spikes are flagged against the *simulated* history (longest run of
the previous 30 days).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

from jobs.simulate.traits import RunnerTraits, runner_rng

__all__ = ["DeviceSpec", "PlannedSession", "devices_for", "plan_day", "plan_runner", "session_speed_m_s"]

SESSION_KINDS = ("easy", "long", "intervals", "recovery")
#: (min, max) planned duration per kind, minutes
DURATION_MIN: dict[str, tuple[float, float]] = {
    "easy": (30, 50),
    "long": (60, 95),
    "intervals": (40, 55),
    "recovery": (25, 35),
}
SPIKE_FACTOR = 1.10
SPIKE_PROBABILITY = 0.2  # of a long run


@dataclass(frozen=True)
class DeviceSpec:
    """One device worn in a session.

    Attributes
    ----------
    device_id : stable per runner and device (``r0003.foot_left``).
    sensor : ``foot_imu`` | ``pelvis_imu`` | ``emg`` | ``watch``.
    side : ``left`` | ``right`` | ``center``.
    sample_rate_hz : 200 (foot), 100 (pelvis, EMG), 1 (watch).
    code : small int used to separate random streams.
    """

    device_id: str
    sensor: str
    side: str
    sample_rate_hz: float
    code: int


def devices_for(traits: RunnerTraits) -> list[DeviceSpec]:
    """The runner's devices, watch first."""
    rid = traits.runner_id
    out = [DeviceSpec(f"{rid}.watch", "watch", "center", 1.0, 0)]
    if "foot_imu" in traits.sensors:
        out.append(DeviceSpec(f"{rid}.foot_left", "foot_imu", "left", 200.0, 1))
        out.append(DeviceSpec(f"{rid}.foot_right", "foot_imu", "right", 200.0, 2))
    if "pelvis_imu" in traits.sensors:
        out.append(DeviceSpec(f"{rid}.pelvis", "pelvis_imu", "center", 100.0, 3))
    if "emg" in traits.sensors:
        out.append(DeviceSpec(f"{rid}.emg", "emg", "center", 100.0, 4))
    return out


@dataclass
class PlannedSession:
    """One planned (and simulated) session.

    Attributes
    ----------
    session_id : ``<runner>-<YYYYMMDD>-<n>`` (local date).
    kind : easy | long | intervals | recovery.
    local_date : the runner's local date.
    start_us : true UTC start (microseconds) = the instant every device is switched on.
    duration_s : whole seconds recorded (one block per device per second).
    distance_m : planned distance (mean speed x running time).
    spike : distance > 1.1 x the longest simulated run of the previous 30 days (False without history).
    longest_prev_30d_m : that reference distance (NaN without history).
    device_offsets_us : device clock minus true clock per device (constant within the session).
    battery : ``None`` | ``"sensor"`` (one sensor dies, others end normally) | ``"watch"`` (the watch dies
        and stops every sensor: no end marker at all).
    battery_device : id of the dying device.
    battery_at_s : seconds after start when it dies (its last block starts before that).
    """

    runner_id: str
    session_id: str
    kind: str
    local_date: dt.date
    start_us: int
    duration_s: int
    distance_m: float
    mean_speed_m_s: float
    seed_key: tuple[int, ...]
    devices: list[DeviceSpec]
    device_offsets_us: dict[str, int] = field(default_factory=dict)
    spike: bool = False
    longest_prev_30d_m: float = float("nan")
    battery: str | None = None
    battery_device: str | None = None
    battery_at_s: float | None = None

    @property
    def end_us(self) -> int:
        return self.start_us + self.duration_s * 1_000_000


def _weekly_template(traits: RunnerTraits, seed: int) -> dict[int, str]:
    """weekday (0=Mon) -> session kind for this runner's usual week."""
    rng = runner_rng(seed, traits.runner_index, 1)
    runs = int(rng.integers(3, 7))
    long_day = int(rng.choice([5, 6]))
    week = {long_day: "long"}
    pool = [d for d in range(7) if d != long_day]
    rng.shuffle(pool)
    for d in pool[: runs - 1]:
        week[d] = "easy"
    if runs >= 4:
        quality = [d for d in (1, 3, 2) if week.get(d) == "easy"]
        if quality:
            week[quality[0]] = "intervals"
    if runs >= 5:
        after_long = (long_day + 1) % 7
        if week.get(after_long) == "easy":
            week[after_long] = "recovery"
    return week


def _offset_us(rng: np.random.Generator, sensor: str) -> int:
    if sensor == "watch":
        return int(rng.normal(0, 15_000))
    lo, hi = (20_000, 1_500_000) if sensor != "emg" else (50_000, 3_000_000)
    mag = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return int(mag if rng.random() < 0.5 else -mag)


def plan_day(
    traits: RunnerTraits, day: dt.date, seed: int, duration_scale: float = 1.0, force_kind: str | None = None
) -> list[PlannedSession]:
    """Sessions of one runner on one local date (0 or 1), independent of any other day.

    ``spike`` / ``longest_prev_30d_m`` are filled in by :func:`plan_runner`, which sees the history.
    A planned spike is a long run 25-40 % longer than the longest regular long run (95 min), so it is a
    spike against any 30-day history without an earlier spike. ``force_kind``: run this kind of session
    on this day whatever the weekly template says (a storyline's spike).
    """
    tz = ZoneInfo(traits.time_zone)
    week = _weekly_template(traits, seed)
    devices = devices_for(traits)
    rng = runner_rng(seed, traits.runner_index, 1000 + day.toordinal())
    kind = week.get(day.weekday())
    if kind is None and rng.random() < 0.08:
        kind = "easy"  # an unplanned extra run
    elif kind is not None and rng.random() < 0.07:
        kind = None  # skipped (tired, weather)
    kind = force_kind or kind
    if kind is None:
        return []
    lo, hi = DURATION_MIN[kind]
    minutes = rng.uniform(lo, hi)
    if kind == "long" and rng.random() < SPIKE_PROBABILITY:
        minutes = DURATION_MIN["long"][1] * rng.uniform(1.25, 1.4)
    speed = traits.easy_speed_m_s * {"easy": 1.0, "long": 0.95, "intervals": 1.05, "recovery": 0.9}[kind]
    speed *= rng.uniform(0.97, 1.03)
    duration_s = max(60, int(round(minutes * 60 * duration_scale)))
    distance = speed * max(0, duration_s - 7)
    hour = rng.choice([6.0, 12.0, 17.5], p=[0.6, 0.1, 0.3]) + rng.uniform(0, 2.5)
    local = dt.datetime.combine(day, dt.time(0), tzinfo=tz) + dt.timedelta(hours=float(hour))
    start_us = int(local.astimezone(dt.UTC).timestamp()) * 1_000_000 + int(rng.integers(0, 1000)) * 1000
    session = PlannedSession(
        runner_id=traits.runner_id,
        session_id=f"{traits.runner_id}-{day:%Y%m%d}-1",
        kind=kind,
        local_date=day,
        start_us=start_us,
        duration_s=duration_s,
        distance_m=float(distance),
        mean_speed_m_s=float(speed),
        seed_key=(int(seed), traits.runner_index, 2, day.toordinal()),
        devices=devices,
        device_offsets_us={d.device_id: _offset_us(rng, d.sensor) for d in devices},
    )
    u = rng.random()
    if u < 0.015:
        session.battery, session.battery_device = "watch", devices[0].device_id
    elif u < 0.05 and len(devices) > 1:
        session.battery = "sensor"
        session.battery_device = devices[1 + int(rng.integers(len(devices) - 1))].device_id
    if session.battery:
        session.battery_at_s = float(rng.uniform(0.3, 0.9) * duration_s)
    return [session]


def plan_runner(
    traits: RunnerTraits,
    start: dt.date,
    days: int,
    seed: int,
    duration_scale: float = 1.0,
    spike: tuple[int, float] | None = None,
) -> list[PlannedSession]:
    """All sessions of one runner on local dates ``start .. start + days - 1``, in time order, with
    ``spike`` flagged against the simulated history (distance > 1.1 x longest of the previous 30 days).

    Parameters
    ----------
    traits : the runner.
    start, days : simulated local-date range.
    seed : fleet seed.
    duration_scale : multiplies every planned duration (tests use ~0.05-0.2 for short sessions).
    spike : ``(days before the last day, factor)``: that day holds a long run ``factor`` x the longest run
        of the previous 30 days (a storyline, see :mod:`jobs.simulate.stories`).
    """
    out: list[PlannedSession] = []
    spike_day = start + dt.timedelta(days=days - 1 - spike[0]) if spike else None
    for i in range(days):
        day = start + dt.timedelta(days=i)
        force = "long" if day == spike_day else None
        for session in plan_day(traits, day, seed, duration_scale, force_kind=force):
            recent = [p.distance_m for p in out if 0 < (day - p.local_date).days <= 30]
            if force and recent:
                session.duration_s = int(round(spike[1] * max(recent) / session.mean_speed_m_s)) + 8
                session.distance_m = float(session.mean_speed_m_s * (session.duration_s - 7))
                session.battery = session.battery_device = session.battery_at_s = None
            if recent:
                session.longest_prev_30d_m = max(recent)
                session.spike = session.distance_m > SPIKE_FACTOR * session.longest_prev_30d_m
            out.append(session)
    return out


def session_speed_m_s(session: PlannedSession, rng: np.random.Generator) -> np.ndarray:
    """True running speed at 1 Hz (m/s) for every second of the session.

    Easy/long/recovery: steady pace with a slow random wander (+-3 %). Intervals: 10 % warm-up, then
    repetitions of 3 min at 1.3x and 2 min jog at 0.85x (scaled with the session), cool-down.
    """
    n = session.duration_s
    t = np.arange(n, dtype=float)
    wander = np.cumsum(rng.normal(0, 0.004, n))
    wander = wander - np.linspace(0, wander[-1], n)
    base = session.mean_speed_m_s * (1 + np.clip(wander, -0.04, 0.04))
    if session.kind == "intervals":
        warm, cool = 0.15 * n, 0.85 * n
        period = max(20.0, n * 0.1)
        work = ((t - warm) % period) < 0.6 * period
        factor = np.where((t >= warm) & (t < cool), np.where(work, 1.3, 0.85), 0.95)
        # smooth the pace changes over ~8 s (runners accelerate, not jump)
        k = np.ones(8) / 8
        factor = np.convolve(np.pad(factor, (4, 3), mode="edge"), k, mode="valid")
        base = base * factor
    return base
