"""Pure pandas core of the daily job (no Beam): session summaries and one runner's daily rows.

Two stages, each a plain function the Beam DoFns wrap:

1. :func:`summarise_session`: all strides, watch records and markers of one session -> one
   summary dict (duration, distance, steps, time-at-HR histogram, impact, compensation stats).
2. :func:`runner_daily_rows`: one runner's session summaries (over the lookback) + profile ->
   one row per local date in ``[first, last]`` with load, rolling load and compensation columns.

Every value for date ``d`` depends only on data in ``[d - LOOKBACK_DAYS, d]``, so any run that
covers ``d`` (single date, range, late-data recompute) produces the same row.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from pipelines.science import compensation as comp
from pipelines.science import load
from schemas.daily_table import COMPONENT_NAMES, DAILY, DAILY_SCHEMA_VERSION

__all__ = [
    "EWMA_HORIZON_DAYS",
    "HR_WINDOW_DAYS",
    "LOOKBACK_DAYS",
    "is_running",
    "runner_daily_rows",
    "summarise_session",
]

#: EWMA restarted from 0 this many days before each date (see load.ewma_truncated)
EWMA_HORIZON_DAYS = 90
#: HRmax/HRrest estimates use the HR observed in this many days up to the date
HR_WINDOW_DAYS = 42
#: days of history before a date that its row depends on (TRIMP of the oldest EWMA day needs HR history)
LOOKBACK_DAYS = EWMA_HORIZON_DAYS + HR_WINDOW_DAYS

STRIDE_COLUMNS = [
    "runner_id",
    "session_id",
    "foot",
    "ic_time",
    "next_ic_time",
    "session_elapsed_s",
    "cadence_spm",
    "ground_contact_time_ms",
    "peak_impact_m_s2",
    "foot_strike_angle_deg",
    "pelvic_drop_deg",
    "glute_max_act_norm",
    "glute_med_act_norm",
    "glute_share",
    "hamstring_share",
    "calf_share",
    "recruitment_inverted",
    "sensors",
    "quality_ok",
]
WATCH_COLUMNS = [
    "runner_id",
    "session_id",
    "timestamp",
    "heart_rate_bpm",
    "distance_m",
    "cadence_spm",
    "ground_contact_time_ms",
    "ground_contact_balance_left_pct",
]
SESSION_COLUMNS = [
    "runner_id",
    "session_id",
    "timestamp",
    "marker",
    "sport",
    "total_elapsed_s",
    "total_distance_m",
]
#: timestamp columns arrive as int64 microseconds since the epoch (UTC)
TIME_COLUMNS = {"ic_time", "next_ic_time", "timestamp"}


def is_running(sport: str | None) -> bool:
    """Sessions count for load when their sport is unknown or a kind of running."""
    return sport is None or (isinstance(sport, float) and math.isnan(sport)) or "run" in str(sport).lower()


def _nan(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


class SessionProblem(ValueError):
    """A session whose rows cannot be summarised: its runner's problem, flagged, never the job's."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def summarise_session(
    runner_id: str,
    session_id: str,
    strides: pd.DataFrame | None,
    watch: pd.DataFrame | None,
    markers: pd.DataFrame | None,
) -> dict[str, Any] | None:
    """One session's summary from its rows in the three input tables (any of which may be empty).

    Time columns are int64 µs (UTC). Rules (first available wins):

    - start: start marker, else first watch record / first stride IC;
    - duration_s: end marker ``total_elapsed_s``; end - start markers; watch span + 1 s; stride span;
    - distance_m: end marker ``total_distance_m``; max cumulative watch ``distance_m``; else NaN;
    - steps: stride rows (each row is one initial contact; x2 when only one foot was instrumented);
      else ``sum(cadence_spm * dt / 60)`` over watch records; else NaN.

    Returns None when the session has no rows at all; raises :class:`SessionProblem` when its rows
    cannot date it (only end markers).
    """
    strides = strides if strides is not None and not strides.empty else None
    watch = watch if watch is not None and not watch.empty else None
    markers = markers if markers is not None and not markers.empty else None
    if strides is None and watch is None and markers is None:
        return None
    start_m = end_m = None
    sport = None
    total_elapsed = total_distance = math.nan
    if markers is not None:
        st = markers[markers["marker"] == "start"]
        en = markers[markers["marker"] == "end"]
        if len(st):
            start_m = int(st["timestamp"].min())
            sport = st["sport"].dropna().iloc[0] if st["sport"].notna().any() else None
        if len(en):
            end_m = int(en["timestamp"].max())
            total_elapsed = (
                _nan(en["total_elapsed_s"].dropna().max())
                if en["total_elapsed_s"].notna().any()
                else math.nan
            )
            total_distance = (
                _nan(en["total_distance_m"].dropna().max())
                if en["total_distance_m"].notna().any()
                else math.nan
            )
            if sport is None and en["sport"].notna().any():
                sport = en["sport"].dropna().iloc[0]
    if watch is not None:
        watch = watch.sort_values("timestamp", kind="stable").drop_duplicates("timestamp")
    if strides is not None:
        strides = strides.drop_duplicates(["foot", "ic_time"])
    starts = [x for x in (start_m,) if x is not None]
    if not starts:
        if watch is not None:
            starts.append(int(watch["timestamp"].iloc[0]))
        if strides is not None:
            starts.append(int(strides["ic_time"].min()))
    if not starts:  # e.g. an end marker alone: nothing says when (on which local date) it was run
        raise SessionProblem("no_start_time", "no start marker, watch record or stride dates the session")
    start_us = min(starts)

    if np.isfinite(total_elapsed):
        duration = total_elapsed
    elif start_m is not None and end_m is not None and end_m > start_m:
        duration = (end_m - start_m) / 1e6
    elif watch is not None:
        duration = (int(watch["timestamp"].iloc[-1]) - int(watch["timestamp"].iloc[0])) / 1e6 + 1.0
    elif strides is not None:
        duration = (int(strides["next_ic_time"].max()) - int(strides["ic_time"].min())) / 1e6
    else:
        duration = 0.0

    hr_seconds = np.zeros(load.HR_BINS)
    steps = math.nan
    steps_source = None
    distance = total_distance
    watch_stats = dict.fromkeys(comp.WATCH_STAT_KEYS, math.nan)
    if watch is not None:
        t_s = watch["timestamp"].to_numpy(dtype=float) / 1e6
        dt_s = load.record_dt_s(t_s)
        hr_seconds = load.hr_histogram(watch["heart_rate_bpm"].to_numpy(dtype=float), dt_s)
        if not np.isfinite(distance) and watch["distance_m"].notna().any():
            distance = float(watch["distance_m"].max())
        cad = watch["cadence_spm"].to_numpy(dtype=float)
        if np.isfinite(cad).any():
            steps = float(np.nansum(cad * dt_s / 60.0))
            steps_source = "watch_cadence"
        w = watch.assign(timestamp_s=t_s)
        watch_stats = comp.session_watch_stats(w, start_us / 1e6, duration)

    impact_sum = math.nan
    n_impact = 0.0
    sensors: set[str] = set()
    stride_stats = dict.fromkeys(comp.STRIDE_STAT_KEYS, math.nan)
    if strides is not None:
        feet = strides["foot"].nunique()
        steps = float(len(strides) * (2 if feet == 1 else 1))
        steps_source = "strides"
        imp = strides.loc[strides["quality_ok"].fillna(False).astype(bool), "peak_impact_m_s2"]
        if imp.notna().any():
            impact_sum = load.impact_load_g(imp.to_numpy(dtype=float))
            n_impact = float(imp.notna().sum())
        for s in strides["sensors"].dropna().unique():
            sensors.update(x.strip() for x in str(s).split(",") if x.strip())
        stride_stats = comp.session_stride_stats(strides, duration)
    if watch is not None:
        sensors.add("watch")
    return {
        "runner_id": runner_id,
        "session_id": session_id,
        "start_us": start_us,
        "sport": sport,
        "duration_s": float(duration),
        "distance_m": _nan(distance),
        "steps": steps,
        "steps_source": steps_source,
        "hr_seconds": hr_seconds,
        "impact_load_g": impact_sum,
        "n_impact": n_impact,
        "sensors": ",".join(sorted(sensors)),
        **stride_stats,
        **watch_stats,
    }


def _local_date(start_us: np.ndarray, tz: str) -> np.ndarray:
    ts = pd.to_datetime(np.asarray(start_us, dtype="int64"), unit="us", utc=True)
    try:
        zone = ZoneInfo(tz)
        local = ts.tz_convert(zone)
    except Exception:  # unknown zone name: fall back to UTC (the row's time_zone says what was used)
        local = ts
    return np.asarray(local.date)


def runner_daily_rows(
    runner_id: str,
    summaries: list[dict[str, Any]],
    profile: dict[str, Any] | None,
    first: dt.date,
    last: dt.date,
) -> pd.DataFrame:
    """One runner's ``daily`` rows for local dates ``first..last`` (columns of ``schemas.daily_table.DAILY``).

    ``summaries`` must include every session of the runner whose local date falls in
    ``[first - LOOKBACK_DAYS, last]``. A date gets a row when the runner has a profile or any
    session in ``[date - LOOKBACK_DAYS, date]``.
    """
    profile = profile or {}
    tz = profile.get("time_zone") or "UTC"
    sex = profile.get("sex")
    frame_start = first - dt.timedelta(days=LOOKBACK_DAYS)
    days = pd.date_range(frame_start, last, freq="D").date
    n = len(days)
    day_index = {d: i for i, d in enumerate(days)}

    s = pd.DataFrame(summaries) if summaries else pd.DataFrame(columns=["start_us", "sport"])
    if not s.empty:
        s["day"] = _local_date(s["start_us"].to_numpy(), tz)
        s = s[s["sport"].map(is_running) & s["day"].map(lambda d: d in day_index)].copy()
        s = s.sort_values(["start_us", "session_id"], kind="stable")
    has_sessions = not s.empty

    sessions = np.zeros(n, dtype=np.int32)
    duration = np.zeros(n)
    distance = np.zeros(n)
    distance_known = np.ones(n, dtype=bool)
    longest = np.zeros(n)
    steps = np.zeros(n)
    steps_known = np.ones(n, dtype=bool)
    steps_source: list[str | None] = [None] * n
    impact = np.zeros(n)
    impact_known = np.ones(n, dtype=bool)
    hr_day = np.zeros((n, load.HR_BINS))
    if has_sessions:
        idx = s["day"].map(day_index).to_numpy()
        np.add.at(sessions, idx, 1)
        np.add.at(duration, idx, s["duration_s"].to_numpy(dtype=float))
        dist = s["distance_m"].to_numpy(dtype=float)
        np.add.at(distance, idx, np.nan_to_num(dist))
        np.logical_and.at(distance_known, idx, np.isfinite(dist))
        np.maximum.at(longest, idx, np.nan_to_num(dist))
        st = s["steps"].to_numpy(dtype=float)
        np.add.at(steps, idx, np.nan_to_num(st))
        np.logical_and.at(steps_known, idx, np.isfinite(st))
        imp = s["impact_load_g"].to_numpy(dtype=float)
        np.add.at(impact, idx, np.nan_to_num(imp))
        np.logical_and.at(impact_known, idx, np.isfinite(imp))
        np.add.at(hr_day, idx, np.stack(s["hr_seconds"].to_list()))
        for i, src in zip(idx, s["steps_source"], strict=True):
            if src is not None:
                steps_source[i] = src if steps_source[i] in (None, src) else "mixed"

    # HR parameters and TRIMP per day (params from the HR observed in the last HR_WINDOW_DAYS)
    age = load.age_from_birth_year_band(profile.get("birth_year_band"), last.year)
    cum = np.concatenate([np.zeros((1, load.HR_BINS)), np.cumsum(hr_day, axis=0)])
    trimp_b = np.zeros(n)
    trimp_e = np.zeros(n)
    hr_rest = np.full(n, np.nan)
    hr_max = np.full(n, np.nan)
    hr_src: list[str | None] = [None] * n
    hr_time = hr_day.sum(axis=1)
    trimp_known = np.ones(n, dtype=bool)
    trimp_known[(sessions > 0) & ~(hr_time > 0)] = False
    # all run days with HR at once: history histogram rows, then HR params and TRIMP per row
    hr_days = np.flatnonzero((sessions > 0) & (hr_time > 0))
    if len(hr_days):
        hist = cum[hr_days + 1] - cum[np.maximum(0, hr_days + 1 - HR_WINDOW_DAYS)]
        years = np.array([d.year for d in days], dtype=float)[hr_days]
        ages = None if age is None else age - (last.year - years)
        rest_d, max_d, src, ok = load.hr_params_rows(
            profile.get("resting_hr_bpm"), profile.get("max_hr_bpm"), hist, ages
        )
        trimp_known[hr_days[~ok]] = False
        ii = hr_days[ok]
        trimp_b[ii] = load.banister_trimp_rows(hr_day[ii], rest_d[ok], max_d[ok], sex)
        trimp_e[ii] = load.edwards_trimp_rows(hr_day[ii], max_d[ok])
        hr_rest[ii], hr_max[ii] = rest_d[ok], max_d[ok]
        for i in ii:
            hr_src[i] = src

    acute, chronic = load.acute_chronic(trimp_b, horizon_days=EWMA_HORIZON_DAYS)
    ratio = load.acwr(acute, chronic)
    weekly, mono, strain = load.monotony_strain(trimp_b)
    prev30, spike_ratio, spike_flag = load.session_spike(np.where(distance_known, longest, np.nan))

    # compensation components on the calendar-complete frame
    if has_sessions:  # all days at once, grouped by calendar index (same values as day_components)
        raw = pd.DataFrame(comp.day_component_arrays(s, idx, n))
    else:
        raw = pd.DataFrame(index=list(days))
    for c in COMPONENT_NAMES:
        for suffix, default in (("raw", np.nan), ("sensors", None)):
            if f"{c}_{suffix}" not in raw:
                raw[f"{c}_{suffix}"] = default
    for col in (
        "glute_share_median",
        "cadence_spm",
        "asymmetry_gct_si_pct",
        "asymmetry_glute_si_pct",
        "fatigue_glute_drop_pct",
    ):
        if col not in raw:
            raw[col] = np.nan
    scored = comp.score_components(raw.reset_index(drop=True))

    rest = sessions == 0
    data = dict(
        {
            "runner_id": runner_id,
            "cohort": profile.get("cohort"),
            "sex": sex,
            "time_zone": tz,
            "rest_day": rest,
            "sessions": sessions,
            "duration_s": duration,
            "distance_m": np.where(rest | distance_known, distance, np.nan),
            "steps": np.where(rest | steps_known, np.round(steps), np.nan),
            "steps_source": steps_source,
            "longest_run_m": np.where(rest | distance_known, longest, np.nan),
            "longest_run_prev30d_m": prev30,
            "spike_ratio": spike_ratio,
            "spike_flag": spike_flag,
            "hr_coverage": np.where(
                rest, np.nan, np.clip(hr_time / np.where(duration > 0, duration, np.nan), 0, 1)
            ),
            "hr_rest_bpm_used": hr_rest,
            "hr_max_bpm_used": hr_max,
            "hr_params_source": hr_src,
            "trimp_banister": np.where(trimp_known, trimp_b, np.nan),
            "trimp_edwards": np.where(trimp_known, trimp_e, np.nan),
            "impact_load_g": np.where(rest | impact_known, impact, np.nan),
            "acute_load_trimp": acute,
            "chronic_load_trimp": chronic,
            "acwr": ratio,
            "weekly_load_trimp": weekly,
            "monotony_7d": mono,
            "strain_7d": strain,
            "date": days,
        }
    )
    data["strides"] = np.floor(data["steps"] / 2.0)
    for col in scored.columns:
        if col not in data and col in DAILY.names:
            data[col] = scored[col].to_numpy()
    data["schema_version"] = DAILY_SCHEMA_VERSION
    out = pd.DataFrame(data)  # framed once: column-by-column inserts dominated the per-runner cost

    # which dates get a row: profile known, or a session in [d - LOOKBACK_DAYS, d]
    keep = np.zeros(n, dtype=bool)
    first_i = day_index[first]
    if profile:
        keep[first_i:] = True
    elif has_sessions:
        active = np.cumsum(sessions)
        window_start = np.concatenate([np.zeros(LOOKBACK_DAYS + 1), active])[:n]
        keep = (active - window_start) > 0
        keep[:first_i] = False
    out = out[keep]
    out["spike_flag"] = out["spike_flag"].map(lambda v: None if not np.isfinite(v) else bool(v))
    out["strides"] = out["strides"].astype("Int64")
    out["steps"] = out["steps"].astype("Int64")
    return out[DAILY.names].reset_index(drop=True)
