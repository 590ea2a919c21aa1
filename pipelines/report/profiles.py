"""Every runner's compensation profile for the report: who carries the work, against the cohort and the
runner's own 4-week baseline, with an 8-week sparkline (pandas + inline SVG, no plotting library).

Inputs are the scored rows of one cohort (``pipelines.science.risk`` features: ``<metric>_recent`` = mean of
the last 7 days, ``<metric>_baseline`` = median of the 4 weeks before) and the daily history. EMG shares
come back from the daily components the same way the risk model reads them
(``share = reference + sign x raw``, :data:`pipelines.science.risk.SHARE_TRENDS`).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from markupsafe import Markup

from pipelines.science.compensation import GLUTE_SHARE_REF
from pipelines.science.risk import SHARE_TRENDS, RiskParams

__all__ = ["compensation_profiles", "sparkline_svg"]

#: a change against the own baseline below this fraction counts as "the same" (the risk model's trend start)
SAME_AS_BASELINE = RiskParams().trend_start
#: glute share this far (absolute) below the cohort median or the reference share (an engineering default,
#: see pipelines.science.compensation) reads as "glutes under-work"
GLUTE_GAP = 0.05
MUSCLES = {"glute_deficit": "glutes", "hamstring_dominance": "hamstrings", "calf_dominance": "calves"}


def _share(row: dict, metric: str, which: str) -> float:
    ref, sign = SHARE_TRENDS[metric]
    raw = row.get(f"{metric}_{which}")
    return float(ref + sign * raw) if raw is not None and np.isfinite(raw) else float("nan")


def _fmt(v: float, fmt: str) -> str:
    return format(v, fmt) if v is not None and np.isfinite(v) else "–"


def sparkline_svg(values: np.ndarray, lo: float, hi: float, recent_days: int = 7) -> Markup:
    """A 132 x 30 px inline SVG line of ``values`` (one per day, NaN = no value); last days shaded."""
    w, h, n = 132.0, 30.0, len(values)
    ok = np.isfinite(values)
    shade_x = w * (n - recent_days) / max(n - 1, 1)
    parts = [f'<svg width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.0f} {h:.0f}" role="img">']
    parts.append(f'<rect x="{shade_x:.1f}" y="0" width="{w - shade_x:.1f}" height="{h:.0f}" fill="#fef3c7"/>')
    if ok.sum() >= 2:
        x = np.arange(n)[ok] * w / max(n - 1, 1)
        y = h - 3 - (np.clip(values[ok], lo, hi) - lo) / max(hi - lo, 1e-9) * (h - 6)
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y, strict=True))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#7c3aed" stroke-width="1.5"/>')
        parts.append(f'<circle cx="{x[-1]:.1f}" cy="{y[-1]:.1f}" r="2.2" fill="#7c3aed"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # numbers only: nothing to escape


def _daily_series(history: pd.DataFrame, col: str, end: dt.date, n_days: int) -> dict[str, np.ndarray]:
    """runner -> one value per day of ``[end - n_days + 1, end]`` (NaN where no row)."""
    if col not in history.columns or not len(history):
        return {}
    first = end - dt.timedelta(days=n_days - 1)
    out: dict[str, np.ndarray] = {}
    for rid, g in history.groupby("runner_id"):
        arr = np.full(n_days, np.nan)
        idx = np.array([(d - first).days for d in g["local_date"]], dtype=int)
        vals = pd.to_numeric(g[col], errors="coerce").to_numpy(dtype=float)
        ok = (idx >= 0) & (idx < n_days)
        arr[idx[ok]] = vals[ok]
        out[str(rid)] = arr
    return out


def _pattern(glute: float, glute_base: float, cohort_glute: float, shares: dict[str, float]) -> str:
    """One plain sentence: who carries the work and whether that is new or standing."""
    if not np.isfinite(glute):
        return ""
    top = max(shares, key=lambda k: shares[k] if np.isfinite(shares[k]) else -1.0)
    lead = {
        "glutes": "glutes lead",
        "hamstrings": "hamstrings carry hip extension",
        "calves": "calves carry push-off",
    }
    text = lead[top]
    # against the cohort, and against the reference share when the whole cohort compensates
    below = (
        [f"cohort {cohort_glute:.0%}"]
        if np.isfinite(cohort_glute) and glute < cohort_glute - GLUTE_GAP
        else []
    )
    if glute < GLUTE_SHARE_REF - GLUTE_GAP:
        below.append(f"reference {GLUTE_SHARE_REF:.0%}")
    if below:
        text += f"; glutes under-work ({glute:.0%} vs " + ", ".join(below) + ")"
    if np.isfinite(glute_base) and glute_base > 0:
        change = glute / glute_base - 1.0
        if abs(change) < SAME_AS_BASELINE:
            text += "; standing (as on the 4-week baseline)"
        else:
            text += f"; new: glute share {change:+.0%} on the 4-week baseline"
    return text


def _median(values) -> float:
    """Median of the finite values, NaN when there are none (a cohort without that sensor)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(np.median(arr)) if arr.size else float("nan")


def _onset(inv: float | None, inv_base: float | None) -> str:
    """Recruitment order in words from the share of strides where hamstrings fire before the glutes."""
    if inv is None or not np.isfinite(inv):
        return ""
    first = "hamstrings first" if inv >= 0.5 else "glutes first"
    text = f"{first} (hamstrings lead {inv:.0%} of strides"
    if inv_base is not None and np.isfinite(inv_base):
        text += f", baseline {inv_base:.0%}"
    return text + ")"


def compensation_profiles(
    group: pd.DataFrame, history: pd.DataFrame, report_date: dt.date, n_days: int = 56
) -> tuple[list[dict], dict[str, str]]:
    """(one dict per runner of ``group``, sorted by runner id, for the report's profile table; the cohort's
    medians of glute share, pelvic drop and asymmetry over the last 7 days)."""
    rows = group.sort_values("runner_id").to_dict("records")
    glute_now = np.array([_share(r, "glute_deficit", "recent") for r in rows])
    cohort = {
        "glute": _median(glute_now),
        "drop": _median([r.get("pelvic_drop_recent", np.nan) for r in rows]),
        "asym": _median([r.get("asymmetry_recent", np.nan) for r in rows]),
    }
    glute_series = _daily_series(history, "glute_share", report_date, n_days)
    comp_series = _daily_series(history, "compensation_score", report_date, n_days)
    out = []
    for r in rows:
        shares = {MUSCLES[m]: _share(r, m, "recent") for m in MUSCLES}
        total = sum(v for v in shares.values() if np.isfinite(v))
        bar = [
            {"muscle": k, "pct": 100.0 * v / total} for k, v in shares.items() if np.isfinite(v) and total > 0
        ]
        glute, glute_base = shares["glutes"], _share(r, "glute_deficit", "baseline")
        series = glute_series.get(r["runner_id"])
        if series is not None and np.isfinite(series).sum() >= 2:
            spark, spark_label = sparkline_svg(series, 0.15, 0.5), "glute share"
        else:
            spark, spark_label = (
                sparkline_svg(comp_series.get(r["runner_id"], np.full(n_days, np.nan)), 0, 100),
                "comp. score",
            )
        inv, inv_base = r.get("recruitment_inversion_recent"), r.get("recruitment_inversion_baseline")
        # below the flag line: the largest driver that is not the contested ACWR, so a quiet week still
        # shows what is moving
        watch = [d for d in (r.get("drivers") or []) if d["driver"] != "acwr" and d["points"] >= 1.0]
        out.append(
            {
                "runner_id": r["runner_id"],
                "level": r.get("risk_level", "low"),
                "bar": bar,
                "glute": _fmt(glute, ".0%"),
                "glute_base": _fmt(glute_base, ".0%"),
                "onset": _onset(inv, inv_base),
                "watch": watch[0]["reason"] if watch and r.get("risk_level") == "low" else "",
                "drop": _fmt(r.get("pelvic_drop_recent"), ".1f"),
                "drop_base": _fmt(r.get("pelvic_drop_baseline"), ".1f"),
                "asym": _fmt(r.get("asymmetry_recent"), ".1f"),
                "asym_base": _fmt(r.get("asymmetry_baseline"), ".1f"),
                "score": _fmt(r.get("compensation_score"), ".0f"),
                "pattern": _pattern(glute, glute_base, cohort["glute"], shares),
                "spark": spark,
                "spark_label": spark_label,
            }
        )
    cohort_fmt = {
        "glute": _fmt(cohort["glute"], ".0%"),
        "drop": _fmt(cohort["drop"], ".1f"),
        "asym": _fmt(cohort["asym"], ".1f"),
    }
    return out, cohort_fmt
