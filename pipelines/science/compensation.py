"""Compensation score (0-100) and its eight explainable components.

Plain numpy/pandas, no Beam. Three steps:

1. :func:`session_stride_stats` / :func:`session_watch_stats`: robust per-session statistics
   (medians over quality-checked strides, left/right medians, early/late thirds of long runs).
2. :func:`day_components`: one row per day with each component's **raw value** (higher = more
   compensation), the sensors that covered it, and sub-measures, from the day's sessions
   (count-weighted mean of session medians).
3. :func:`score_components`: for a runner's calendar-complete daily frame, each component's
   population z-score, z-score and % change vs the runner's own previous 28 days, its points
   (0-100) and the evidence-weighted total re-weighted over the computable components.

A component that cannot be computed (sensor absent, no long run, ...) is NULL with
``<component>_computable = False``, never 0. The formulas, reference constants and evidence
grades are in ``docs/compensation.md`` and in :data:`COMPONENTS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "BASELINE_DAYS",
    "BASELINE_MIN_DAYS",
    "COMPONENTS",
    "COMPONENT_NAMES",
    "EVIDENCE_WEIGHT",
    "LONG_RUN_MIN_S",
    "Component",
    "day_components",
    "linear_points",
    "score_components",
    "session_stride_stats",
    "session_watch_stats",
    "symmetry_index_pct",
]

#: a session at least this long (s) counts as a long run for the fatigue-drift component
LONG_RUN_MIN_S = 40 * 60
#: personal baseline: previous 28 calendar days (today excluded), at least 5 days with a value
BASELINE_DAYS = 28
BASELINE_MIN_DAYS = 5
#: weight of a component in the total, by evidence grade (BRIEF section 2)
EVIDENCE_WEIGHT = {"strong": 1.0, "moderate": 1.0, "weak": 0.7, "contested": 0.4}


@dataclass(frozen=True)
class Component:
    """One compensation component.

    ``raw`` is oriented so that higher = more compensation. Points from the population reference
    are ``linear_points(raw, good, bad)``; the population z-score is ``(raw - pop_mean) / pop_sd``.
    """

    name: str
    raw_unit: str
    definition: str
    sensors: str
    evidence: str
    pop_mean: float
    pop_sd: float
    good: float  # raw at or below this: 0 points
    bad: float  # raw at or above this: 100 points
    baseline_only: bool = False  # points from the personal trend only (when a baseline exists)

    @property
    def weight(self) -> float:
        return EVIDENCE_WEIGHT[self.evidence]


COMPONENTS: tuple[Component, ...] = (
    Component(
        "glute_deficit",
        "fraction of reference",
        "1 - median glute activation (mean of glute max/med envelopes, 1.0 = runner reference)",
        "emg",
        "weak",
        0.0,
        0.15,
        0.05,
        0.45,
    ),
    Component(
        "calf_dominance",
        "fraction of reference",
        "median gastrocnemius activation - 1",
        "emg",
        "weak",
        0.0,
        0.15,
        0.05,
        0.45,
    ),
    Component(
        "hamstring_dominance",
        "fraction of reference",
        "median hamstrings activation - 1",
        "emg",
        "weak",
        0.0,
        0.15,
        0.05,
        0.45,
    ),
    Component(
        "recruitment_inversion",
        "fraction of strides",
        "share of EMG strides where hamstrings fire before gluteus maximus",
        "emg",
        "contested",
        0.3,
        0.2,
        0.5,
        0.9,
        baseline_only=True,
    ),
    Component(
        "pelvic_drop",
        "deg",
        "median contralateral pelvic drop in stance",
        "pelvis_imu",
        "moderate",
        5.0,
        2.0,
        6.0,
        10.0,
    ),
    Component(
        "asymmetry",
        "%",
        "ground-contact-time symmetry index |L-R| / mean(L,R) * 100 (strides, or 4*|balance-50| from the watch)",
        "foot_imu|watch",
        "weak",
        2.0,
        1.5,
        3.0,
        10.0,
    ),
    Component(
        "overstride",
        "deg",
        "median foot-strike angle (+ = heel strike); low cadence adds points",
        "foot_imu",
        "moderate",
        10.0,
        6.0,
        12.0,
        25.0,
    ),
    Component(
        "fatigue_drift",
        "%",
        "ground contact time, last vs first third of long runs (>= 40 min), % change",
        "foot_imu|watch",
        "weak",
        2.0,
        3.0,
        3.0,
        12.0,
    ),
)
COMPONENT_NAMES: tuple[str, ...] = tuple(c.name for c in COMPONENTS)

#: secondary measures that can raise a component's points (max of sub-points): (good, bad)
GLUTE_ASYMMETRY_POINTS = (15.0, 40.0)  # glute activation symmetry index, %
CADENCE_POINTS = (170.0, 150.0)  # steps/min: 0 points at >= 170, 100 at <= 150
GLUTE_FATIGUE_DROP_POINTS = (5.0, 30.0)  # % drop of glute activation, last vs first third


def linear_points(raw: np.ndarray | float, good: float, bad: float) -> np.ndarray:
    """``clip((raw - good) / (bad - good), 0, 1) * 100``; NaN stays NaN (``bad < good`` is allowed)."""
    x = np.asarray(raw, dtype=float)
    return np.clip((x - good) / (bad - good), 0.0, 1.0) * 100.0


def symmetry_index_pct(left: float, right: float) -> float:
    """Symmetry index ``|L - R| / ((L + R) / 2) * 100`` (%), NaN when either side is missing."""
    if not (np.isfinite(left) and np.isfinite(right)) or left + right <= 0:
        return math.nan
    return abs(left - right) / ((left + right) / 2.0) * 100.0


def _median(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.median()) if len(x) else math.nan


def _thirds(elapsed_s: pd.Series, values: pd.Series, duration_s: float) -> tuple[float, float]:
    """Medians of ``values`` in the first and last third of the session (by elapsed time)."""
    ok = elapsed_s.notna() & values.notna()
    if not ok.any() or not np.isfinite(duration_s) or duration_s <= 0:
        return math.nan, math.nan
    e, v = elapsed_s[ok], values[ok]
    early = v[e < duration_s / 3.0]
    late = v[e >= 2.0 * duration_s / 3.0]
    if len(early) < 10 or len(late) < 10:
        return math.nan, math.nan
    return float(early.median()), float(late.median())


STRIDE_STAT_KEYS = (
    "n_ok",
    "glute_act",
    "n_glute",
    "calf_act",
    "n_calf",
    "ham_act",
    "n_ham",
    "glute_share",
    "n_inv_obs",
    "n_inverted",
    "pelvic_drop_deg",
    "n_pelvis",
    "fsa_deg",
    "n_fsa",
    "cadence_spm",
    "n_cadence",
    "gct_left_ms",
    "gct_right_ms",
    "n_gct_lr",
    "glute_left",
    "glute_right",
    "n_glute_lr",
    "gct_early_ms",
    "gct_late_ms",
    "glute_early",
    "glute_late",
)
WATCH_STAT_KEYS = (
    "gct_balance_left_pct",
    "n_balance",
    "watch_cadence_spm",
    "n_watch_cadence",
    "watch_gct_early_ms",
    "watch_gct_late_ms",
)


def session_stride_stats(strides: pd.DataFrame, duration_s: float) -> dict[str, float]:
    """Per-session statistics over quality-checked strides (``quality_ok``) of one session.

    Activation columns are EMG envelopes normalised to the runner's reference (1.0). Glute
    activation per stride is the mean of the available glute max/med values. Early/late thirds are
    computed only for long runs (``duration_s >= LONG_RUN_MIN_S``) with >= 10 strides in each third.
    """
    out: dict[str, float] = dict.fromkeys(STRIDE_STAT_KEYS, math.nan)
    if strides is None or strides.empty:
        return out
    s = strides[strides["quality_ok"].fillna(False).astype(bool)]
    out["n_ok"] = float(len(s))
    if s.empty:
        return out
    glute = s[["glute_max_act_norm", "glute_med_act_norm"]].mean(axis=1, skipna=True)
    out["glute_act"], out["n_glute"] = _median(glute), float(glute.notna().sum())
    out["calf_act"], out["n_calf"] = (
        _median(s["gastrocnemius_act_norm"]),
        float(s["gastrocnemius_act_norm"].notna().sum()),
    )
    out["ham_act"], out["n_ham"] = (
        _median(s["hamstrings_act_norm"]),
        float(s["hamstrings_act_norm"].notna().sum()),
    )
    out["glute_share"] = _median(s["glute_share"])
    inv = s["recruitment_inverted"].dropna()
    out["n_inv_obs"], out["n_inverted"] = float(len(inv)), float(inv.astype(bool).sum())
    out["pelvic_drop_deg"], out["n_pelvis"] = (
        _median(s["pelvic_drop_deg"]),
        float(s["pelvic_drop_deg"].notna().sum()),
    )
    out["fsa_deg"], out["n_fsa"] = (
        _median(s["foot_strike_angle_deg"]),
        float(s["foot_strike_angle_deg"].notna().sum()),
    )
    out["cadence_spm"], out["n_cadence"] = _median(s["cadence_spm"]), float(s["cadence_spm"].notna().sum())
    left, right = s[s["foot"] == "left"], s[s["foot"] == "right"]
    out["gct_left_ms"], out["gct_right_ms"] = (
        _median(left["ground_contact_time_ms"]),
        _median(right["ground_contact_time_ms"]),
    )
    out["n_gct_lr"] = float(
        min(left["ground_contact_time_ms"].notna().sum(), right["ground_contact_time_ms"].notna().sum())
    )
    gl, gr = glute[s["foot"] == "left"], glute[s["foot"] == "right"]
    out["glute_left"], out["glute_right"] = _median(gl), _median(gr)
    out["n_glute_lr"] = float(min(gl.notna().sum(), gr.notna().sum()))
    if np.isfinite(duration_s) and duration_s >= LONG_RUN_MIN_S and "session_elapsed_s" in s:
        out["gct_early_ms"], out["gct_late_ms"] = _thirds(
            s["session_elapsed_s"], s["ground_contact_time_ms"], duration_s
        )
        out["glute_early"], out["glute_late"] = _thirds(s["session_elapsed_s"], glute, duration_s)
    return out


def session_watch_stats(records: pd.DataFrame, start_s: float, duration_s: float) -> dict[str, float]:
    """Per-session statistics from 1 Hz watch records (running dynamics of FIT-only runners).

    ``start_s`` is the session start (epoch s); records need ``timestamp_s``. GCT balance is the
    left foot's share of ground contact time (%), 50 = symmetric; cadence is steps/min (> 0 only).
    """
    out: dict[str, float] = dict.fromkeys(WATCH_STAT_KEYS, math.nan)
    if records is None or records.empty:
        return out
    bal = records["ground_contact_balance_left_pct"]
    bal = bal[(bal > 0) & (bal < 100)]
    out["gct_balance_left_pct"], out["n_balance"] = _median(bal), float(bal.notna().sum())
    cad = records["cadence_spm"]
    cad = cad[cad > 0]
    out["watch_cadence_spm"], out["n_watch_cadence"] = _median(cad), float(cad.notna().sum())
    if np.isfinite(duration_s) and duration_s >= LONG_RUN_MIN_S:
        gct = records["ground_contact_time_ms"].where(records["ground_contact_time_ms"] > 0)
        out["watch_gct_early_ms"], out["watch_gct_late_ms"] = _thirds(
            records["timestamp_s"] - start_s, gct, duration_s
        )
    return out


def _wmean(values: pd.Series, weights: pd.Series) -> float:
    ok = values.notna() & weights.notna() & (weights > 0)
    if not ok.any():
        return math.nan
    return float(np.average(values[ok], weights=weights[ok]))


def _day_row(g: pd.DataFrame) -> dict[str, object]:
    r: dict[str, object] = {}
    # EMG: glute deficit, calf and hamstring dominance, recruitment inversion
    glute = _wmean(g["glute_act"], g["n_glute"])
    r["glute_deficit_raw"] = 1.0 - glute if np.isfinite(glute) else math.nan
    r["glute_deficit_sensors"] = "emg" if np.isfinite(glute) else None
    calf = _wmean(g["calf_act"], g["n_calf"])
    r["calf_dominance_raw"] = calf - 1.0 if np.isfinite(calf) else math.nan
    r["calf_dominance_sensors"] = "emg" if np.isfinite(calf) else None
    ham = _wmean(g["ham_act"], g["n_ham"])
    r["hamstring_dominance_raw"] = ham - 1.0 if np.isfinite(ham) else math.nan
    r["hamstring_dominance_sensors"] = "emg" if np.isfinite(ham) else None
    n_obs = g["n_inv_obs"].sum(min_count=1)
    inv = float(g["n_inverted"].sum() / n_obs) if n_obs and n_obs > 0 else math.nan
    r["recruitment_inversion_raw"] = inv
    r["recruitment_inversion_sensors"] = "emg" if np.isfinite(inv) else None
    r["glute_share_median"] = _wmean(g["glute_share"], g["n_glute"])
    # pelvis IMU
    pd_deg = _wmean(g["pelvic_drop_deg"], g["n_pelvis"])
    r["pelvic_drop_raw"] = pd_deg
    r["pelvic_drop_sensors"] = "pelvis_imu" if np.isfinite(pd_deg) else None
    # asymmetry: strides L/R GCT, else watch GCT balance; glute L/R as a secondary measure
    si_strides = [symmetry_index_pct(a, b) for a, b in zip(g["gct_left_ms"], g["gct_right_ms"], strict=True)]
    si = _wmean(pd.Series(si_strides, index=g.index), g["n_gct_lr"])
    sensors = "foot_imu"
    if not np.isfinite(si):
        si = _wmean(4.0 * (g["gct_balance_left_pct"] - 50.0).abs(), g["n_balance"])
        sensors = "watch"
    glute_si = _wmean(
        pd.Series(
            [symmetry_index_pct(a, b) for a, b in zip(g["glute_left"], g["glute_right"], strict=True)],
            index=g.index,
        ),
        g["n_glute_lr"],
    )
    r["asymmetry_raw"] = si
    r["asymmetry_gct_si_pct"] = si
    r["asymmetry_glute_si_pct"] = glute_si
    r["asymmetry_sensors"] = (
        ",".join(x for x, ok in ((sensors, np.isfinite(si)), ("emg", np.isfinite(glute_si))) if ok) or None
    )
    # overstride: foot-strike angle; cadence (strides, else watch) as a secondary measure
    fsa = _wmean(g["fsa_deg"], g["n_fsa"])
    cad = _wmean(g["cadence_spm"], g["n_cadence"])
    if not np.isfinite(cad):
        cad = _wmean(g["watch_cadence_spm"], g["n_watch_cadence"])
    r["overstride_raw"] = fsa
    r["cadence_spm"] = cad
    r["overstride_sensors"] = "foot_imu" if np.isfinite(fsa) else None
    # fatigue drift: GCT last vs first third of long runs (strides, else watch); glute drop secondary
    gct_e = g["gct_early_ms"].where(g["gct_early_ms"].notna(), g["watch_gct_early_ms"])
    gct_l = g["gct_late_ms"].where(g["gct_early_ms"].notna(), g["watch_gct_late_ms"])
    drift = (gct_l - gct_e) / gct_e * 100.0
    r["fatigue_drift_raw"] = _wmean(drift, g["duration_s"])
    glute_drop = (g["glute_early"] - g["glute_late"]) / g["glute_early"] * 100.0
    r["fatigue_glute_drop_pct"] = _wmean(glute_drop, g["duration_s"])
    fd_sensors = []
    if np.isfinite(r["fatigue_drift_raw"]):
        fd_sensors.append("foot_imu" if g["gct_early_ms"].notna().any() else "watch")
    if np.isfinite(r["fatigue_glute_drop_pct"]):
        fd_sensors.append("emg")
    r["fatigue_drift_sensors"] = ",".join(fd_sensors) or None
    return r


def day_components(sessions: pd.DataFrame) -> pd.DataFrame:
    """Raw component values per day from per-session statistics.

    Parameters
    ----------
    sessions
        One row per session with a ``day`` column, ``duration_s``, and the keys of
        :func:`session_stride_stats` and :func:`session_watch_stats` (NaN where absent).

    Returns
    -------
    DataFrame indexed by ``day`` with ``<component>_raw`` and ``<component>_sensors`` for every
    component plus ``glute_share_median``, ``cadence_spm``, ``asymmetry_gct_si_pct``,
    ``asymmetry_glute_si_pct`` and ``fatigue_glute_drop_pct``. Day values are count-weighted means
    of session medians (duration-weighted for fatigue drift).
    """
    if sessions.empty:
        return pd.DataFrame()
    rows = {day: _day_row(g) for day, g in sessions.groupby("day", sort=True)}
    return pd.DataFrame.from_dict(rows, orient="index")


def score_components(daily: pd.DataFrame) -> pd.DataFrame:
    """Points, baselines and the total score for one runner's calendar-complete daily frame.

    ``daily`` has one row per calendar day in order (rest days included) with the columns of
    :func:`day_components` (NaN/None where not computable). Adds, for each component ``c``:

    - ``c_computable``: raw value present;
    - ``c_pop_z = (raw - pop_mean) / pop_sd``;
    - ``c_baseline_z = (raw - mean_28) / max(sd_28, 0.25 * pop_sd)`` and
      ``c_vs_baseline_pct = (raw - mean_28) / |mean_28| * 100`` over the runner's previous 28
      calendar days (today excluded, >= 5 days with a value, else NaN);
    - ``c_points`` (0-100) = ``max(population points, baseline points)`` where population points =
      ``linear_points(raw, good, bad)`` (plus secondary measures, see docs) and baseline points =
      ``clip((baseline_z - 1) / 2, 0, 1) * 100``; recruitment inversion uses baseline points only
      once a baseline exists (a per-runner trend signal).

    and ``compensation_score = sum(w_c * points_c) / sum(w_c)`` over computable components
    (``w`` from the evidence grade), ``compensation_components_available`` and
    ``compensation_sensors``. Days without any computable component get a NULL score.
    """
    out = daily.copy()
    n = len(out)
    num = np.zeros(n)
    den = np.zeros(n)
    available = np.zeros(n, dtype=np.int32)
    for comp in COMPONENTS:
        c = comp.name
        raw = out[f"{c}_raw"].astype(float).to_numpy()
        ok = np.isfinite(raw)
        prev = pd.Series(raw).shift(1).rolling(BASELINE_DAYS, min_periods=BASELINE_MIN_DAYS)
        base_mean = prev.mean().to_numpy()
        base_sd = np.maximum(np.nan_to_num(prev.std(ddof=1).to_numpy(), nan=0.0), 0.25 * comp.pop_sd)
        with np.errstate(divide="ignore", invalid="ignore"):
            bz = np.where(ok & np.isfinite(base_mean), (raw - base_mean) / base_sd, np.nan)
            pct = np.where(
                ok & np.isfinite(base_mean) & (np.abs(base_mean) > 1e-9),
                (raw - base_mean) / np.abs(base_mean) * 100.0,
                np.nan,
            )
        pop_pts = linear_points(raw, comp.good, comp.bad)
        if c == "asymmetry":
            pop_pts = np.fmax(
                pop_pts, linear_points(out["asymmetry_glute_si_pct"].astype(float), *GLUTE_ASYMMETRY_POINTS)
            )
        elif c == "overstride":
            pop_pts = np.where(
                ok, np.fmax(pop_pts, linear_points(out["cadence_spm"].astype(float), *CADENCE_POINTS)), np.nan
            )
        elif c == "fatigue_drift":
            pop_pts = np.fmax(
                pop_pts,
                linear_points(out["fatigue_glute_drop_pct"].astype(float), *GLUTE_FATIGUE_DROP_POINTS),
            )
        base_pts = linear_points(bz, 1.0, 3.0)
        if comp.baseline_only:
            pts = np.where(np.isfinite(base_pts), base_pts, pop_pts)
        else:
            pts = np.fmax(pop_pts, base_pts)
        pts = np.where(ok, pts, np.nan)
        out[f"{c}_computable"] = ok
        out[f"{c}_points"] = pts
        out[f"{c}_pop_z"] = np.where(ok, (raw - comp.pop_mean) / comp.pop_sd, np.nan)
        out[f"{c}_baseline_z"] = bz
        out[f"{c}_vs_baseline_pct"] = pct
        out[f"{c}_sensors"] = out[f"{c}_sensors"].where(ok, None)
        num += np.where(ok, comp.weight * np.nan_to_num(pts), 0.0)
        den += np.where(ok, comp.weight, 0.0)
        available += ok.astype(np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["compensation_score"] = np.where(den > 0, num / den, np.nan)
    out["compensation_components_available"] = available
    sensors = []
    for i in range(n):
        s: set[str] = set()
        for comp in COMPONENTS:
            v = out[f"{comp.name}_sensors"].iat[i]
            if isinstance(v, str) and v:
                s.update(v.split(","))
        sensors.append(",".join(sorted(s)) or None)
    out["compensation_sensors"] = sensors
    return out
