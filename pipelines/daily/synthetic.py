"""Synthetic input tables (strides, watch records, sessions, runners) from per-runner traits.

Used by the daily job's tests and benchmark so they need neither the simulator nor the stream
job. Strides are drawn around each runner's trait values with noise; this is a test generator,
not a physiological model.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from pipelines.science.compensation import CALF_SHARE_REF, GLUTE_SHARE_REF, HAMSTRING_SHARE_REF
from schemas.tables import RUNNERS, SESSIONS, STRIDES, WATCH_RECORDS

__all__ = ["SHARE_UV", "Traits", "fleet", "random_traits", "tables_for_fleet", "true_shares"]

#: mean envelope (uV) of a runner without compensation traits: 100 x the population reference shares of
#: pipelines.science.compensation, so a runner with zero traits has exactly the reference shares
SHARE_UV = {
    "glute": 100.0 * GLUTE_SHARE_REF,
    "hamstrings": 100.0 * HAMSTRING_SHARE_REF,
    "calf": 100.0 * CALF_SHARE_REF,
}


def true_shares(tr: Traits) -> tuple[float, float, float]:
    """(glute, hamstring, calf) share of a runner's trait amplitudes (what the strides should show)."""
    g = SHARE_UV["glute"] * (1 - tr.glute_deficit)
    h = SHARE_UV["hamstrings"] * (1 + tr.hamstring_dominance)
    c = SHARE_UV["calf"] * (1 + tr.calf_dominance)
    return g / (g + h + c), h / (g + h + c), c / (g + h + c)


@dataclass(frozen=True)
class Traits:
    """Ground truth for one synthetic runner (higher = more compensation)."""

    runner_id: str
    glute_deficit: float  # relative reduction of gluteus maximus amplitude (0 = reference)
    calf_dominance: float  # relative increase of gastrocnemius amplitude
    hamstring_dominance: float  # relative increase of hamstrings amplitude
    pelvic_drop_deg: float
    asymmetry_pct: float  # GCT symmetry index
    foot_strike_deg: float
    cadence_spm: float
    fatigue_pct: float  # GCT increase, last vs first third
    inversion_rate: float
    sex: str = "female"
    time_zone: str = "Europe/Copenhagen"
    sensors: str = "foot_imu,pelvis_imu,emg"


def random_traits(n: int, seed: int = 0, sensors: str = "foot_imu,pelvis_imu,emg") -> list[Traits]:
    """``n`` runners with independent, uniformly spread traits."""
    rng = np.random.default_rng(seed)
    zones = ["Europe/Copenhagen", "America/New_York", "Asia/Tokyo", "UTC"]
    return [
        Traits(
            runner_id=f"r{i:04d}",
            glute_deficit=float(rng.uniform(0.0, 0.4)),
            calf_dominance=float(rng.uniform(0.0, 0.4)),
            hamstring_dominance=float(rng.uniform(0.0, 0.4)),
            pelvic_drop_deg=float(rng.uniform(3.0, 10.0)),
            asymmetry_pct=float(rng.uniform(0.0, 10.0)),
            foot_strike_deg=float(rng.uniform(0.0, 25.0)),
            cadence_spm=float(rng.uniform(155.0, 185.0)),
            fatigue_pct=float(rng.uniform(0.0, 12.0)),
            inversion_rate=float(rng.uniform(0.05, 0.6)),
            sex="female" if i % 2 else "male",
            time_zone=zones[i % len(zones)],
            sensors=sensors,
        )
        for i in range(n)
    ]


def _us(t: dt.datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def tables_for_fleet(
    traits: list[Traits],
    first: dt.date,
    days: int,
    seed: int = 1,
    run_probability: float = 0.7,
    minutes: tuple[float, float] = (30.0, 70.0),
    stride_every: int = 1,
    with_profile_hr: bool = True,
) -> dict[str, pa.Table]:
    """Strides, watch records, session markers and runner profiles for ``traits`` over ``days`` days.

    Each runner runs at 07:00 local time with probability ``run_probability`` per day. ``stride_every``
    keeps every k-th stride (smaller tables; step counts then undercount by k).
    """
    from zoneinfo import ZoneInfo

    rng = np.random.default_rng(seed)
    strides: list[pa.Table] = []
    watch: list[pa.Table] = []
    sess: dict[str, list] = {f.name: [] for f in SESSIONS}
    runners: dict[str, list] = {f.name: [] for f in RUNNERS}
    for tr in traits:
        has = {s: s in tr.sensors.split(",") for s in ("foot_imu", "pelvis_imu", "emg")}
        runners["runner_id"].append(tr.runner_id)
        runners["cohort"].append("synthetic")
        runners["sex"].append(tr.sex)
        runners["birth_year_band"].append("1985-1989")
        runners["time_zone"].append(tr.time_zone)
        runners["resting_hr_bpm"].append(50 if with_profile_hr else None)
        runners["max_hr_bpm"].append(190 if with_profile_hr else None)
        runners["updated_at"].append(_us(dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
        runners["profile_seq"].append(1)
        zone = ZoneInfo(tr.time_zone)
        seq = 0
        for d in range(days):
            if rng.random() > run_probability:
                continue
            day = first + dt.timedelta(days=d)
            start = dt.datetime(day.year, day.month, day.day, 7, 0, tzinfo=zone).astimezone(dt.UTC)
            dur_s = float(rng.uniform(*minutes) * 60.0)
            sid = f"{tr.runner_id}-{day.isoformat()}"
            speed = float(rng.uniform(2.6, 3.6))
            t0 = _us(start)
            # watch records, 1 Hz
            n = int(dur_s)
            ts = t0 + np.arange(n, dtype=np.int64) * 1_000_000
            frac = np.arange(n) / max(n - 1, 1)
            hr = np.clip(120 + 40 * frac + rng.normal(0, 3, n), 60, 200).round().astype(np.int32)
            gct_w = 240 * (1 + tr.fatigue_pct / 100 * frac) + rng.normal(0, 4, n)
            bal = 50 + tr.asymmetry_pct / 4 + rng.normal(0, 0.3, n)
            seq_arr = np.arange(seq, seq + n)
            seq += n
            cols = {
                "runner_id": [tr.runner_id] * n,
                "device_id": [f"{tr.runner_id}-watch"] * n,
                "session_id": [sid] * n,
                "seq": seq_arr,
                "timestamp": ts,
                "heart_rate_bpm": hr,
                "speed_m_s": np.full(n, speed),
                "distance_m": np.arange(1, n + 1) * speed,
                "cadence_spm": tr.cadence_spm + rng.normal(0, 1.5, n),
                "ground_contact_time_ms": gct_w,
                "ground_contact_balance_left_pct": bal,
                "vertical_oscillation_mm": np.full(n, 85.0),
                "vertical_ratio_pct": np.full(n, 7.5),
                "step_length_mm": np.full(n, speed / tr.cadence_spm * 60_000),
                "power_w": np.full(n, np.nan),
                "altitude_m": np.full(n, 10.0),
                "date": [dt.datetime.fromtimestamp(t / 1e6, dt.UTC).date() for t in ts[[0]]] * n,
            }
            watch.append(_to_table(cols, WATCH_RECORDS))
            for marker, ts_m in (("start", t0), ("end", t0 + int(dur_s * 1e6))):
                sess["runner_id"].append(tr.runner_id)
                sess["device_id"].append(f"{tr.runner_id}-watch")
                sess["session_id"].append(sid)
                sess["seq"].append(seq)
                seq += 1
                sess["timestamp"].append(ts_m)
                sess["marker"].append(marker)
                sess["source"].append("synthetic")
                sess["sport"].append("running")
                sess["sub_sport"].append(None)
                sess["sensors"].append(tr.sensors)
                sess["total_elapsed_s"].append(dur_s if marker == "end" else None)
                sess["total_distance_m"].append(dur_s * speed if marker == "end" else None)
                sess["avg_heart_rate_bpm"].append(None)
                sess["avg_cadence_spm"].append(None)
                sess["date"].append(dt.datetime.fromtimestamp(ts_m / 1e6, dt.UTC).date())
            if not has["foot_imu"]:
                continue
            # strides, both feet
            stride_s = 120.0 / tr.cadence_spm
            k = int(dur_s / stride_s)
            for foot, side in (("left", -1.0), ("right", 1.0)):
                idx = np.arange(0, k, stride_every)
                m = len(idx)
                el = idx * stride_s + (0.0 if foot == "left" else stride_s / 2)
                ic = t0 + (el * 1e6).astype(np.int64)
                fr = el / dur_s
                gct = 240 * (1 + side * tr.asymmetry_pct / 200) * (
                    1 + tr.fatigue_pct / 100 * fr
                ) + rng.normal(0, 6, m)
                glute = (1 - tr.glute_deficit) * (1 + side * 0.0) + rng.normal(0, 0.08, m)
                calf = 1 + tr.calf_dominance + rng.normal(0, 0.08, m)
                ham = 1 + tr.hamstring_dominance + rng.normal(0, 0.08, m)
                # raw mean envelopes (uV) around the reference shares; shares are their ratios
                g_uV = SHARE_UV["glute"] * glute
                h_uV = SHARE_UV["hamstrings"] * ham
                c_uV = SHARE_UV["calf"] * calf
                post = g_uV + h_uV + c_uV
                emg = has["emg"]
                pel = has["pelvis_imu"]
                cols = {
                    "runner_id": [tr.runner_id] * m,
                    "session_id": [sid] * m,
                    "foot": [foot] * m,
                    "stride_id": [f"{sid}:{foot}:{x}" for x in ic],
                    "ic_time": ic,
                    "tc_time": ic + (gct * 1000).astype(np.int64),
                    "next_ic_time": ic + int(stride_s * 1e6),
                    "session_elapsed_s": el,
                    "stride_time_s": np.full(m, stride_s),
                    "cadence_spm": tr.cadence_spm + rng.normal(0, 2, m),
                    "ground_contact_time_ms": gct,
                    "swing_time_ms": stride_s * 1000 - gct,
                    "flight_time_ms": np.full(m, 80.0),
                    "duty_factor": gct / (stride_s * 1000),
                    "peak_impact_m_s2": 60 + 2 * tr.foot_strike_deg + rng.normal(0, 5, m),
                    "foot_strike_angle_deg": tr.foot_strike_deg + rng.normal(0, 3, m),
                    "vertical_oscillation_mm": np.full(m, 85.0) if pel else [None] * m,
                    "pelvic_drop_deg": (tr.pelvic_drop_deg + rng.normal(0, 1, m)) if pel else [None] * m,
                    "glute_max_act_norm": glute if emg else [None] * m,
                    "glute_med_act_norm": glute + rng.normal(0, 0.05, m) if emg else [None] * m,
                    "hamstrings_act_norm": ham if emg else [None] * m,
                    "gastrocnemius_act_norm": calf if emg else [None] * m,
                    "vastus_lateralis_act_norm": np.ones(m) if emg else [None] * m,
                    "glute_share": g_uV / post if emg else [None] * m,
                    "hamstring_share": h_uV / post if emg else [None] * m,
                    "calf_share": c_uV / post if emg else [None] * m,
                    "glute_onset_ms": np.full(m, -50.0) if emg else [None] * m,
                    "hamstring_onset_ms": np.full(m, -60.0) if emg else [None] * m,
                    "recruitment_inverted": (rng.random(m) < tr.inversion_rate) if emg else [None] * m,
                    "sensors": [tr.sensors] * m,
                    "quality_ok": np.ones(m, dtype=bool),
                    "quality_reason": [None] * m,
                    "date": [dt.datetime.fromtimestamp(t / 1e6, dt.UTC).date() for t in ic[[0]]] * m
                    if m
                    else [],
                }
                strides.append(_to_table(cols, STRIDES))
    return {
        "strides": pa.concat_tables(strides) if strides else STRIDES.empty_table(),
        "watch_records": pa.concat_tables(watch) if watch else WATCH_RECORDS.empty_table(),
        "sessions": _to_table(sess, SESSIONS),
        "runners": _to_table(runners, RUNNERS),
    }


def _to_table(cols: dict, schema: pa.Schema) -> pa.Table:
    arrays = []
    n = len(next(iter(cols.values())))
    for f in schema:
        vals = cols.get(f.name, [None] * n)  # a nullable column this generator does not fill
        if pa.types.is_timestamp(f.type):
            arrays.append(pa.array(np.asarray(vals, dtype=np.int64)).cast(f.type))
        elif isinstance(vals, list) and all(v is None for v in vals):
            arrays.append(pa.nulls(len(vals), f.type))
        else:
            arrays.append(pa.array(vals, f.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


def fleet(traits: list[Traits]) -> list[dict]:
    """Traits as plain dicts (for DataFrames in tests)."""
    return [asdict(t) for t in traits]
