"""Nightly injury-risk scoring: explainable, baseline-relative, graded by evidence (numpy/pandas, no Beam).

Two pure steps:

1. :func:`build_features` turns a runner's daily history (one row per runner per local date, from the
   ``daily`` table) into one row per runner for a report date ``D``:

   * distance spike (Frandsen et al. 2025): for each of the last 7 days ``d`` with a run,
     ``ratio(d) = longest_run_m(d) / max(longest_run_m(d-30 .. d-1))``; the largest ratio and how many days
     ago it happened;
   * trend metrics (compensation components, cadence, impact): ``recent`` = mean over ``[D-6, D]``,
     ``baseline`` = median over the 4 weeks before, ``[D-34, D-7]`` (the runner's own baseline);
   * context: latest ACWR and compensation score, days with runs in the last 28 days.

2. :func:`score_features` converts features into points per driver and a 0-100 score:

   * ``distance_spike`` (strong): ratio > 1.10 gives ``30 + 60 (ratio - 1.10)`` points, capped at 45, fading
     linearly with the days since the run (``x (1 - days / 14)``). A fresh spike alone makes a runner
     *elevated*: it is the best-supported predictor.
   * trend drivers (moderate / weak / contested): ``change = recent / baseline - 1`` (sign flipped for
     metrics where lower is worse; for the EMG share components ``change`` is the relative change of the
     runner's posterior-chain share, see :data:`SHARE_TRENDS`); ``points = max_points x clip((change - 0.15) / (0.50 - 0.15), 0, 1)``:
     nothing below a 15 % change, full weight at 50 %. Needs >= ``min_baseline_days`` baseline days.
   * ``low_step_rate`` (weak): ``max_points x clip((165 - cadence) / 15, 0, 1)`` plus the trend rule on a
     cadence drop.
   * ``compensation_score`` (weak): ``max_points x clip((score - 50) / 30, 0, 1)``.
   * ``acwr`` (contested): ``min(10, 20 (acwr - 1.3))`` for ``acwr > 1.3``. The level is decided on the
     score **without** ACWR; ACWR can move the score within that level but never across a level boundary,
     so it can never decide alone.

   ``risk_score = clip(sum(points), 0, 100)``; level: ``low < 30 <= elevated < 55 <= high``.

Each driver carries its evidence grade and the likely injury sites it points to; the runner's likely sites are
ranked by the points pointing at them.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipelines.science.compensation import (
    CALF_SHARE_REF,
    COMPONENTS,
    GLUTE_SHARE_REF,
    HAMSTRING_SHARE_REF,
    LONG_RUN_MIN_S,
)

__all__ = [
    "DRIVERS",
    "TREND_METRICS",
    "DriverSpec",
    "RiskParams",
    "SENSOR_LABELS",
    "build_features",
    "explain_not_computable",
    "level_for",
    "score_features",
]


@dataclass(frozen=True)
class DriverSpec:
    """One risk driver: how it is named, graded and where it points."""

    key: str
    label: str
    grade: str  # strong | moderate | weak | contested
    max_points: float
    sites: tuple[str, ...]
    unit: str = ""
    lower_is_worse: bool = False
    evidence: str = ""


DRIVERS: dict[str, DriverSpec] = {
    d.key: d
    for d in (
        DriverSpec(
            "distance_spike",
            "single-run distance spike",
            "strong",
            45.0,
            ("overuse injury (any site)",),
            "ratio",
            evidence="Frandsen et al., BJSM 2025 (5,205 runners): a run >10 % longer than the longest of the "
            "previous 30 days raises overuse-injury rates.",
        ),
        DriverSpec(
            "pelvic_drop",
            "pelvic drop",
            "moderate",
            15.0,
            ("knee", "IT band"),
            "deg",
            evidence="Prospective and case-control studies link contralateral pelvic drop and hip adduction to "
            "patellofemoral pain and ITBS.",
        ),
        DriverSpec(
            "overstride",
            "overstriding",
            "moderate",
            12.0,
            ("hip", "knee"),
            "deg",
            evidence="Overstriding raises braking forces and impact loading (moderate evidence).",
        ),
        DriverSpec(
            "impact_loading",
            "impact loading",
            "moderate",
            12.0,
            ("shin", "knee"),
            "m/s²",
            evidence="High impact loading rate and braking force are associated with overuse injuries "
            "(moderate/weak).",
        ),
        DriverSpec(
            "low_step_rate",
            "low step rate",
            "weak",
            8.0,
            ("shin", "hip"),
            "spm",
            lower_is_worse=True,
            evidence="Low step rate is associated with shin injury (weak).",
        ),
        DriverSpec(
            "glute_deficit",
            "glute under-activation",
            "weak",
            10.0,
            ("Achilles", "knee", "hip"),
            "",
            evidence="Delayed/short gluteal activation in runners with Achilles tendinopathy and knee pain "
            "(case-control studies only).",
        ),
        DriverSpec(
            "calf_dominance",
            "calf compensation",
            "weak",
            10.0,
            ("calf", "Achilles", "plantar fascia"),
            "",
            evidence="Calves taking over push-off when glutes under-work (mechanistic/case-control).",
        ),
        DriverSpec(
            "hamstring_dominance",
            "hamstring compensation",
            "weak",
            10.0,
            ("hamstring",),
            "",
            evidence="Hamstrings substituting for gluteus maximus in hip extension (mechanistic/case-control).",
        ),
        DriverSpec(
            "lumbar_compensation",
            "low-back (lumbar) compensation",
            "weak",
            8.0,
            ("low back",),
            "",
            evidence="Lumbar extension substituting for hip extension (mechanistic).",
        ),
        DriverSpec(
            "asymmetry",
            "left/right asymmetry",
            "weak",
            8.0,
            ("the weaker side's hip and knee",),
            "",
            evidence="Side-to-side differences are associated with injury in some cohorts (weak).",
        ),
        DriverSpec(
            "fatigue_drift",
            "late-run form drift",
            "weak",
            6.0,
            ("knee", "hip"),
            "",
            evidence="Form degrades with fatigue late in long runs (weak).",
        ),
        DriverSpec(
            "recruitment_inversion",
            "hamstrings firing before glutes",
            "contested",
            5.0,
            ("hamstring", "low back"),
            "",
            evidence="Some healthy people fire hamstrings first: only a change against the runner's own "
            "trend counts.",
        ),
        DriverSpec(
            "compensation_score",
            "overall compensation score",
            "weak",
            10.0,
            (),
            "/100",
            evidence="Composite of the compensation components (see the daily table).",
        ),
        DriverSpec(
            "acwr",
            "acute:chronic workload ratio",
            "contested",
            10.0,
            (),
            "",
            evidence="Contested (coupling artefacts, poor prediction; Lolli 2019, Impellizzeri 2021): "
            "reported as context, never decides a level.",
        ),
    )
}

#: trend metrics (recent vs the runner's 4-week baseline): feature column -> driver key
TREND_METRICS: dict[str, str] = {
    "pelvic_drop": "pelvic_drop",
    "overstride": "overstride",
    "impact_loading": "impact_loading",
    "cadence_spm": "low_step_rate",
    "glute_deficit": "glute_deficit",
    "calf_dominance": "calf_dominance",
    "hamstring_dominance": "hamstring_dominance",
    "lumbar_compensation": "lumbar_compensation",
    "asymmetry": "asymmetry",
    "fatigue_drift": "fatigue_drift",
    "recruitment_inversion": "recruitment_inversion",
}

#: EMG components whose daily raw value is a posterior-chain share minus/plus its population reference
#: (docs/compensation.md): metric -> (reference share, sign) with ``share = reference + sign x raw``. Their
#: raw values sit near 0 and change sign, so ``recent / baseline - 1`` is meaningless; the trend rule uses
#: the relative change of the runner's share instead, oriented so that + = more compensation:
#: ``change = (raw_recent - raw_baseline) / share_baseline``.
SHARE_TRENDS: dict[str, tuple[float, float]] = {
    "glute_deficit": (GLUTE_SHARE_REF, -1.0),
    "calf_dominance": (CALF_SHARE_REF, 1.0),
    "hamstring_dominance": (HAMSTRING_SHARE_REF, 1.0),
}

#: metrics that are a fraction of strides (0..1): a ratio against a baseline of 0 (no inversion at all) is
#: undefined, so their change is the difference in fraction points: 0.15 = 15 percentage points
FRACTION_TRENDS: frozenset[str] = frozenset({"recruitment_inversion"})

LEVELS = ("low", "elevated", "high")


@dataclass(frozen=True)
class RiskParams:
    """Thresholds of :func:`score_features` (see the module docstring for the formulas)."""

    spike_threshold: float = 1.10
    spike_base_points: float = 30.0
    spike_slope_points: float = 60.0  # per unit of ratio above the threshold
    spike_fade_days: float = 14.0
    recent_days: int = 7
    baseline_days: int = 28
    spike_lookback_days: int = 30
    #: a spike needs daily rows (rest days count) on at least this many of the lookback days; with less
    #: history the "longest run of the previous 30 days" is unknown and the driver is not computable
    spike_min_history_days: int = 28
    min_baseline_days: int = 4
    trend_start: float = 0.15
    trend_full: float = 0.50
    low_step_rate_spm: float = 165.0
    low_step_rate_full_spm: float = 150.0
    compensation_start: float = 50.0
    compensation_full: float = 80.0
    acwr_threshold: float = 1.3
    acwr_slope_points: float = 20.0
    elevated_at: float = 30.0
    high_at: float = 55.0
    max_reasons: int = 3
    drivers: dict[str, DriverSpec] = field(default_factory=lambda: dict(DRIVERS))


def level_for(score: np.ndarray | float, params: RiskParams | None = None) -> np.ndarray:
    """``low`` / ``elevated`` / ``high`` for scores (vectorised)."""
    p = params or RiskParams()
    s = np.asarray(score, dtype=float)
    return np.where(s >= p.high_at, "high", np.where(s >= p.elevated_at, "elevated", "low"))


# ----------------------------------------------------------------------------------------- features


def _matrix(hist: pd.DataFrame, col: str, runners: pd.Index, n_days: int) -> np.ndarray:
    """runners x day-offset matrix (offset 0 = report date), NaN where no row."""
    out = np.full((len(runners), n_days), np.nan)
    if col not in hist.columns:
        return out
    vals = pd.to_numeric(hist[col], errors="coerce").to_numpy(dtype=float)
    rows = hist["_row"].to_numpy() if "_row" in hist.columns else runners.get_indexer(hist["runner_id"])
    offs = hist["_offset"].to_numpy().astype(int)
    ok = (rows >= 0) & (offs >= 0) & (offs < n_days)
    out[rows[ok], offs[ok]] = vals[ok]
    return out


def build_features(
    history: pd.DataFrame, report_date: dt.date, params: RiskParams | None = None
) -> pd.DataFrame:
    """One row per runner with the features :func:`score_features` needs.

    Parameters
    ----------
    history
        Daily rows with ``runner_id``, ``local_date`` (date) and any of: ``distance_m``, ``longest_run_m``
        (falls back to ``distance_m``), ``acwr``, ``compensation_score`` and the trend metric columns of
        :data:`TREND_METRICS`; optional ``<metric>_computable`` booleans. At least the last
        ``recent_days + spike_lookback_days`` days before ``report_date`` are needed for the spike.
    report_date
        The night's date ``D``; rows after it are ignored.
    """
    p = params or RiskParams()
    n_days = max(p.recent_days + p.spike_lookback_days, p.recent_days + p.baseline_days)
    hist = history.copy()
    days = pd.to_datetime(hist["local_date"]).to_numpy().astype("datetime64[D]")
    hist["_offset"] = (np.datetime64(report_date, "D") - days).astype(int)
    hist = hist[(hist["_offset"] >= 0) & (hist["_offset"] < n_days)]
    runners = pd.Index(sorted(hist["runner_id"].unique()), name="runner_id")
    hist["_row"] = runners.get_indexer(hist["runner_id"])  # once: reused by every metric's matrix
    n = len(runners)
    feats = pd.DataFrame(index=runners)

    longest_col = "longest_run_m" if "longest_run_m" in hist.columns else "distance_m"
    longest = _matrix(hist, longest_col, runners, n_days + 1)
    ran = np.nan_to_num(longest, nan=0.0) > 0
    # spike: ratio(d) for each recent day d against the 30 days before it
    best_ratio = np.full(n, np.nan)
    best_days = np.full(n, -1, dtype=int)
    best_run = np.full(n, np.nan)
    best_prev = np.full(n, np.nan)
    filled = np.nan_to_num(longest, nan=0.0)
    covered = np.isfinite(longest)  # a daily row exists (rest days included)
    for off in range(p.recent_days):
        window = filled[:, off + 1 : off + 1 + p.spike_lookback_days]
        prev = window.max(axis=1) if window.shape[1] else np.zeros(n)
        history_days = covered[:, off + 1 : off + 1 + p.spike_lookback_days].sum(axis=1)
        run = filled[:, off]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(
                (run > 0) & (prev > 0) & (history_days >= p.spike_min_history_days), run / prev, np.nan
            )
        # the largest ratio wins; ties go to the most recent run
        better = np.isfinite(ratio) & (~np.isfinite(best_ratio) | (ratio > best_ratio))
        best_ratio = np.where(better, ratio, best_ratio)
        best_days = np.where(better, off, best_days)
        best_run = np.where(better, run, best_run)
        best_prev = np.where(better, prev, best_prev)
    feats["spike_ratio"] = best_ratio
    feats["spike_days_ago"] = np.where(best_days >= 0, best_days, -1)
    feats["longest_run_m"] = best_run
    feats["prev30_longest_run_m"] = best_prev

    last_off = np.where(ran.any(axis=1), ran.argmax(axis=1), -1)
    feats["last_run_offset"] = last_off
    feats["days_with_runs_28d"] = ran[:, : p.baseline_days].sum(axis=1).astype(int)

    def latest(col: str) -> np.ndarray:
        m = _matrix(hist, col, runners, p.recent_days)
        has = np.isfinite(m)
        idx = np.where(has.any(axis=1), has.argmax(axis=1), 0)
        vals = m[np.arange(n), idx]
        return np.where(has.any(axis=1), vals, np.nan)

    feats["acwr"] = latest("acwr")
    feats["compensation_score"] = latest("compensation_score")

    base_lo, base_hi = p.recent_days, p.recent_days + p.baseline_days
    for metric in TREND_METRICS:
        m = _matrix(hist, metric, runners, n_days)
        comp_col = f"{metric}_computable"
        if comp_col in hist.columns:
            ok = _matrix(hist.assign(**{comp_col: hist[comp_col].astype(float)}), comp_col, runners, n_days)
            m = np.where(ok == 1.0, m, np.nan)
        recent = m[:, : p.recent_days]
        base = m[:, base_lo:base_hi]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows -> NaN, on purpose
            feats[f"{metric}_recent"] = np.nanmean(recent, axis=1)
            feats[f"{metric}_baseline"] = np.nanmedian(base, axis=1)
        feats[f"{metric}_baseline_days"] = np.isfinite(base).sum(axis=1).astype(int)
        feats[f"{metric}_available"] = np.isfinite(recent).any(axis=1)
        feats[f"{metric}_ever"] = np.isfinite(m).any(axis=1)
        feats[f"{metric}_ready_in_days"] = _baseline_ready_in_days(np.isfinite(m), p)
    rows = np.isfinite(longest)
    # days from the runner's first daily row in the window to the report date, both included
    feats["history_days"] = np.where(rows.any(axis=1), rows.shape[1] - np.argmax(rows[:, ::-1], axis=1), 0)
    recent_strides = _matrix(hist, "strides", runners, p.recent_days)
    feats["recent_strides"] = np.nansum(np.nan_to_num(recent_strides, nan=0.0), axis=1)
    recent_dur = np.nan_to_num(_matrix(hist, "duration_s", runners, p.recent_days), nan=0.0)
    feats["recent_max_duration_s"] = recent_dur.max(axis=1) if recent_dur.shape[1] else 0.0
    return feats.reset_index()


def _baseline_ready_in_days(ok: np.ndarray, p: RiskParams) -> np.ndarray:
    """Days after the report date until the 4-week baseline window ``[X-34, X-7]`` of a future report
    date ``X`` holds ``min_baseline_days`` days with a value, counting only the values already measured
    (``ok``: runners x day offset, 0 = report date). 0 = ready now; NaN = not reachable with the values
    measured so far (more measured days are needed)."""
    n, width = ok.shape
    out = np.full(n, np.nan)
    lo, hi = p.recent_days, p.recent_days + p.baseline_days  # baseline offsets relative to X
    for ahead in range(0, hi + 1):
        # offsets relative to D of X's baseline: [lo - ahead, hi - ahead)
        a, b = max(0, lo - ahead), max(0, min(width, hi - ahead))
        count = ok[:, a:b].sum(axis=1) if b > a else np.zeros(n)
        newly = np.isnan(out) & (count >= p.min_baseline_days)
        out[newly] = ahead
    return out


# ------------------------------------------------------------------------------------------ scoring


def _fmt_pct(x: float) -> str:
    return f"{x:+.0f} %"


def _reason(key: str, spec: DriverSpec, value: float, baseline: float, change: float, extra: dict) -> str:
    if key == "distance_spike":
        when = "today" if extra["days"] == 0 else f"{extra['days']} day{'s' if extra['days'] > 1 else ''} ago"
        return (
            f"longest run {_fmt_pct(change)} over the longest of the previous 30 days "
            f"({value / 1000:.1f} km vs {baseline / 1000:.1f} km, {when})"
        )
    if key == "acwr":
        return f"acute:chronic load {value:.2f} (contested metric, context only)"
    if key == "compensation_score":
        return f"compensation score {value:.0f}/100"
    if key == "low_step_rate":
        if np.isfinite(baseline) and np.isfinite(change) and change >= extra.get("trend_start_pct", 15.0):
            return f"step rate {value:.0f} spm, {change:.0f} % below your 4-week baseline of {baseline:.0f}"
        return f"low step rate {value:.0f} spm"
    trend = "up" if change >= 0 else "down"
    if key in FRACTION_TRENDS:
        return f"{spec.label} in {value:.0%} of strides, {baseline:.0%} on your 4-week baseline"
    text = f"{spec.label} {trend} {abs(change):.0f} % on your 4-week baseline"
    if key not in (*SHARE_TRENDS, "impact_loading") and np.isfinite(value) and np.isfinite(baseline):
        # the values themselves: a large % on a near-zero baseline means little on its own (impact:
        # its daily value is g or m/s² depending on the source, see pipelines/nightly/inputs.py)
        unit = f" {spec.unit}" if spec.unit else ""
        text += f" ({value:.3g}{unit} vs {baseline:.3g}{unit})"
    return text


def score_features(features: pd.DataFrame, params: RiskParams | None = None) -> pd.DataFrame:
    """Score one row per runner. Returns ``features`` plus the risk columns.

    Added columns: ``points_<driver>`` for every driver, ``score_without_acwr``, ``risk_score``,
    ``risk_level``, ``drivers`` (list of dicts, largest first, points > 0), ``top_driver``,
    ``top_driver_grade``, ``n_drivers``, ``likely_sites``, ``reasons``, ``not_computable``.
    """
    p = params or RiskParams()
    f = features.reset_index(drop=True)
    n = len(f)
    specs = p.drivers
    points: dict[str, np.ndarray] = {}
    value: dict[str, np.ndarray] = {}
    baseline: dict[str, np.ndarray] = {}
    change: dict[str, np.ndarray] = {}
    computable: dict[str, np.ndarray] = {}

    def col(name: str) -> np.ndarray:
        return f[name].to_numpy(dtype=float) if name in f.columns else np.full(n, np.nan)

    # strong: distance spike
    ratio = col("spike_ratio")
    days = col("spike_days_ago")
    fade = np.clip(1.0 - np.nan_to_num(days, nan=0.0) / p.spike_fade_days, 0.0, 1.0)
    raw = np.where(
        np.nan_to_num(ratio, nan=0.0) > p.spike_threshold,
        np.minimum(
            specs["distance_spike"].max_points,
            p.spike_base_points + p.spike_slope_points * (np.nan_to_num(ratio) - p.spike_threshold),
        ),
        0.0,
    )
    points["distance_spike"] = raw * fade
    value["distance_spike"] = col("longest_run_m")
    baseline["distance_spike"] = col("prev30_longest_run_m")
    change["distance_spike"] = (ratio - 1.0) * 100.0
    computable["distance_spike"] = np.isfinite(ratio)

    # trend drivers
    span = p.trend_full - p.trend_start
    for metric, key in TREND_METRICS.items():
        spec = specs[key]
        rec, base = col(f"{metric}_recent"), col(f"{metric}_baseline")
        nbase = col(f"{metric}_baseline_days")
        with np.errstate(divide="ignore", invalid="ignore"):
            if metric in SHARE_TRENDS:
                ref, sign = SHARE_TRENDS[metric]
                share_base = ref + sign * base
                rel = np.where(share_base > 1e-9, (rec - base) / share_base, np.nan)
            elif metric in FRACTION_TRENDS:
                rel = rec - base
            else:
                rel = np.where(np.abs(base) > 1e-9, rec / base - 1.0, np.nan)
        worse = -rel if spec.lower_is_worse else rel
        has_base = np.isfinite(worse) & (np.nan_to_num(nbase) >= p.min_baseline_days)
        pts = np.where(has_base, spec.max_points * np.clip((worse - p.trend_start) / span, 0.0, 1.0), 0.0)
        ok = has_base.copy()
        if key == "low_step_rate":
            absolute = spec.max_points * np.clip(
                (p.low_step_rate_spm - rec) / (p.low_step_rate_spm - p.low_step_rate_full_spm), 0.0, 1.0
            )
            absolute = np.nan_to_num(absolute, nan=0.0)
            pts = np.maximum(pts, absolute)
            ok = ok | np.isfinite(rec)
            change[key] = np.nan_to_num(worse * 100.0, nan=np.nan)
        else:
            change[key] = rel * 100.0
        points[key] = np.nan_to_num(pts, nan=0.0)
        value[key], baseline[key] = rec, base
        computable[key] = ok

    comp = col("compensation_score")
    points["compensation_score"] = np.nan_to_num(
        specs["compensation_score"].max_points
        * np.clip((comp - p.compensation_start) / (p.compensation_full - p.compensation_start), 0.0, 1.0),
        nan=0.0,
    )
    value["compensation_score"], baseline["compensation_score"] = comp, np.full(n, p.compensation_start)
    change["compensation_score"] = np.full(n, np.nan)
    computable["compensation_score"] = np.isfinite(comp)

    acwr = col("acwr")
    points["acwr"] = np.nan_to_num(
        np.clip(p.acwr_slope_points * (acwr - p.acwr_threshold), 0.0, specs["acwr"].max_points), nan=0.0
    )
    value["acwr"], baseline["acwr"] = acwr, np.full(n, 1.0)
    change["acwr"] = np.full(n, np.nan)
    computable["acwr"] = np.isfinite(acwr)

    keys = list(specs)
    without = np.clip(sum(points[k] for k in keys if k != "acwr"), 0.0, 100.0)
    lvl = level_for(without, p)
    upper = np.where(lvl == "low", p.elevated_at, np.where(lvl == "elevated", p.high_at, np.inf))
    # ACWR moves the score within the level decided without it, never across a boundary
    capped = np.minimum(np.clip(without + points["acwr"], 0.0, 100.0), upper - 0.01)
    score = np.floor(capped * 10.0 + 1e-9) / 10.0  # floor: one decimal that never crosses a boundary

    out = f.copy()
    for k in keys:
        out[f"points_{k}"] = np.round(points[k], 2)
    out["score_without_acwr"] = np.floor(without * 10.0 + 1e-9) / 10.0
    out["risk_score"] = score
    out["risk_level"] = lvl

    pts_mat = np.column_stack([points[k] for k in keys]) if keys else np.zeros((n, 0))
    drivers_col, top, top_grade, n_drv, sites_col, reasons_col, missing_col = [], [], [], [], [], [], []
    for i in range(n):
        order = [j for j in np.argsort(-pts_mat[i], kind="stable") if pts_mat[i, j] > 0]
        drv = []
        site_pts: dict[str, float] = {}
        for j in order:
            k = keys[j]
            spec = specs[k]
            v, b, c = float(value[k][i]), float(baseline[k][i]), float(change[k][i])
            extra = {"days": int(days[i]) if np.isfinite(days[i]) else 0}
            drv.append(
                {
                    "driver": k,
                    "label": spec.label,
                    "grade": spec.grade,
                    "points": round(float(pts_mat[i, j]), 2),
                    "value": v if np.isfinite(v) else None,
                    "baseline": b if np.isfinite(b) else None,
                    "change_pct": round(c, 1) if np.isfinite(c) else None,
                    "unit": spec.unit,
                    "sites": list(spec.sites),
                    "reason": _reason(k, spec, v, b, c, extra),
                }
            )
            if k != "acwr":
                for s in spec.sites:
                    site_pts[s] = site_pts.get(s, 0.0) + float(pts_mat[i, j])
        drivers_col.append(drv)
        top.append(drv[0]["driver"] if drv else None)
        top_grade.append(drv[0]["grade"] if drv else None)
        n_drv.append(len(drv))
        sites_col.append([s for s, _ in sorted(site_pts.items(), key=lambda kv: (-kv[1], kv[0]))])
        reasons_col.append("; ".join(d["reason"] for d in drv[: p.max_reasons]))
        missing_col.append([k for k in keys if not computable[k][i]])
    out["drivers"] = drivers_col
    out["top_driver"] = top
    out["top_driver_grade"] = top_grade
    out["n_drivers"] = np.asarray(n_drv, dtype=np.int32)
    out["likely_sites"] = sites_col
    out["reasons"] = reasons_col
    out["not_computable"] = missing_col
    return out


# ------------------------------------------------------------------------- why not computable

#: readable names of the sensor kinds (session markers' ``sensors``)
SENSOR_LABELS: dict[str, str] = {
    "foot_imu": "foot IMUs",
    "pelvis_imu": "a pelvis IMU",
    "emg": "EMG shorts",
    "watch": "a watch with running dynamics",
    "lumbar": "a lumbar sensor",
}
#: sensor kinds a driver can be computed from (any one of them); components from their own registry
DRIVER_SENSORS: dict[str, tuple[str, ...]] = {
    **{c.name: tuple(c.sensors.split("|")) for c in COMPONENTS},
    "impact_loading": ("foot_imu",),
    "low_step_rate": ("foot_imu", "watch"),
    "lumbar_compensation": ("lumbar",),  # no kit carries one yet
    "compensation_score": ("emg", "pelvis_imu", "foot_imu", "watch"),
}
#: fewer quality-checked strides than this in the recent days reads as "too few good strides"
MIN_RECENT_STRIDES = 200


def _why_load(key: str, f: dict, ran_recently: bool, p: RiskParams, out) -> dict:  # noqa: ANN001
    """The reason for the load drivers (spike, ACWR): no recent run, short history, or missing data."""
    if not ran_recently:
        return out("no_recent_run", f"no run in the last {p.recent_days} days")
    have = int(min(f.get("history_days", 0) - 1, p.spike_lookback_days))
    if key == "distance_spike" and have < p.spike_min_history_days:
        return out(
            "history",
            f"not enough history: {max(have, 0)} of the {p.spike_min_history_days} days of the previous "
            f"{p.spike_lookback_days} needed",
            p.spike_min_history_days - have,
        )
    what = "heart-rate load" if key == "acwr" else "run distance"
    return out("data_quality", f"no {what} recorded in the last {p.recent_days} days")


def _why_one(key: str, f: dict, worn: set[str], report_date: dt.date, p: RiskParams) -> dict:
    """The true reason why driver ``key`` has no value for one runner (``f``: its feature row)."""

    def out(kind: str, reason: str, ready_in: float | None = None) -> dict:
        ready = (
            None
            if ready_in is None or not np.isfinite(ready_in)
            else report_date + dt.timedelta(int(ready_in))
        )
        return {"driver": key, "kind": kind, "reason": reason, "ready_on": ready}

    ran_recently = (
        f.get("last_run_offset", -1) is not None and 0 <= f.get("last_run_offset", -1) < p.recent_days
    )
    if key in ("distance_spike", "acwr"):
        return _why_load(key, f, ran_recently, p, out)
    needs = DRIVER_SENSORS.get(key, ())
    metric = next((m for m, k in TREND_METRICS.items() if k == key), key)
    has_sensor = bool(worn & set(needs)) or bool(f.get(f"{metric}_ever", False))
    if needs and not has_sensor:
        return out("no_sensor", "needs " + " or ".join(SENSOR_LABELS.get(s, s) for s in needs))
    if not ran_recently:
        return out("no_recent_run", f"no run in the last {p.recent_days} days")
    if key in TREND_METRICS.values() and f.get(f"{metric}_available", False):
        have = int(f.get(f"{metric}_baseline_days", 0))
        if have >= p.min_baseline_days:
            return out("baseline_zero", "the 4-week baseline is 0, so a change against it is not defined")
        return out(
            "history",
            f"not enough history: {have} of the {p.min_baseline_days} days needed in the 4-week baseline "
            f"({report_date - dt.timedelta(p.recent_days + p.baseline_days - 1)} .. "
            f"{report_date - dt.timedelta(p.recent_days)})",
            f.get(f"{metric}_ready_in_days"),
        )
    if key == "fatigue_drift" and f.get("recent_max_duration_s", 0.0) < LONG_RUN_MIN_S:
        return out(
            "no_long_run", f"no run of {LONG_RUN_MIN_S // 60} min or longer in the last {p.recent_days} days"
        )
    if "foot_imu" in needs and f.get("recent_strides", 0.0) < MIN_RECENT_STRIDES:
        return out(
            "too_few_strides",
            f"too few good strides ({int(f.get('recent_strides', 0))} in the last {p.recent_days} days)",
        )
    labels = " or ".join(SENSOR_LABELS.get(x, x) for x in needs) or "the daily data"
    return out(
        "data_quality", f"no usable value from {labels} in the last {p.recent_days} days (data quality)"
    )


def explain_not_computable(
    scored: pd.DataFrame,
    worn: dict[str, set[str]] | None,
    report_date: dt.date,
    params: RiskParams | None = None,
) -> list[list[dict]]:
    """Per runner, one entry per driver in ``not_computable``: ``driver``, ``kind`` (no_sensor |
    no_recent_run | history | baseline_zero | no_long_run | too_few_strides | data_quality), a plain ``reason`` and, for
    history, ``ready_on`` (the first report date whose baseline holds enough days, counting only values
    already measured; None when more measured days are needed).

    ``worn``: sensor kinds declared by each runner's sessions (session markers); a driver whose metric had
    a value at any day of the window counts as having its sensor too.
    """
    p = params or RiskParams()
    worn = worn or {}
    rows = scored.to_dict("records")
    return [
        [_why_one(k, f, set(worn.get(f["runner_id"], ())), report_date, p) for k in f["not_computable"]]
        for f in rows
    ]
