"""Render the nightly injury-risk report: one self-contained HTML file per cohort and date.

``<data>/reports/<date>/<cohort>.html`` (plots embedded as base64 PNG, CSS inline, no JavaScript) with the
same rows next to it as ``<cohort>.parquet`` (the injury_risk rows, nested drivers kept) and
``<cohort>.csv`` (flattened). Files are written atomically (tmp + rename).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import uuid
from collections import Counter
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from infra.settings import Paths
from pipelines.quality.data_docs import QualitySummary
from pipelines.report.plots import RunnerTrendPlotter, driver_prevalence_png, score_histogram_png
from pipelines.report.profiles import compensation_profiles
from pipelines.science.risk import DRIVERS, RiskParams
from schemas.risk_table import DRIVER_KEYS, RISK_MODEL_VERSION

__all__ = ["cohort_slug", "csv_safe", "flat_frame", "render_cohort", "render_reports"]

#: per-runner trend plots per report (the rest of the flagged runners are listed without a plot)
MAX_PLOTS = 12
TREND_DAYS = 56
GRADE_NOTE = {
    "strong": "strong evidence (prospective cohort)",
    "moderate": "moderate evidence",
    "weak": "weak evidence (case-control / mechanistic)",
    "contested": "contested: context only, never decides",
}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("pipelines.report", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


#: a cohort name used as its own file name: letters, digits, "_" and "-", starting with a letter or digit
_CLEAN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}")
_HASHED = re.compile(r".*-[0-9a-f]{12}")


def cohort_slug(cohort: str) -> str:
    """A file name for ``cohort`` that no other cohort name maps to.

    A clean name (see ``_CLEAN``) is its own slug. Any other name becomes a readable part plus the first
    12 hex digits of the SHA-1 of the exact name (``"club/x"`` -> ``club-x-<hash>``, ``"club x"`` ->
    ``club-x-<other hash>``), so names differing only in punctuation never share files. A clean name that
    itself ends like a hashed slug is hashed too, which keeps the mapping one-to-one.
    """
    if _CLEAN.fullmatch(cohort) and not _HASHED.fullmatch(cohort):
        return cohort
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", cohort).strip("-_")[:60] or "cohort"
    return f"{readable}-{hashlib.sha1(cohort.encode('utf-8')).hexdigest()[:12]}"


#: a spreadsheet reads a cell starting with one of these as a formula (OWASP: CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula get a leading apostrophe (shown as text)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v
            )
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def flat_frame(scored: pd.DataFrame) -> pd.DataFrame:
    """The report's rows flattened for CSV (lists joined with "; ")."""
    cols = [
        "date",
        "cohort",
        "runner_id",
        "risk_score",
        "risk_level",
        "score_without_acwr",
        "top_driver",
        "top_driver_grade",
        "reasons",
        "likely_sites",
        "not_computable",
        "spike_ratio",
        "spike_days_ago",
        "acwr",
        "compensation_score",
        *[f"points_{k}" for k in DRIVER_KEYS],
    ]
    out = scored[[c for c in cols if c in scored.columns]].copy()
    if "not_computable_why" in scored.columns:
        out.insert(
            out.columns.get_loc("not_computable") + 1,
            "not_computable_reasons",
            scored["not_computable_why"].map(
                lambda ws: "; ".join(f"{w['driver']}: {why_text(w)}" for w in ws) if ws is not None else ""
            ),
        )
    for c in ("likely_sites", "not_computable"):
        out[c] = out[c].map(lambda v: "; ".join(v) if isinstance(v, list | tuple | np.ndarray) else "")
    return out.sort_values(["risk_score", "runner_id"], ascending=[False, True])


def _fmt_value(v: float | None, unit: str) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    if unit == "ratio":
        return f"{v / 1000:.1f} km"
    return f"{v:.3g}{(' ' + unit) if unit else ''}"


def why_text(why: dict) -> str:
    """One not-computable entry as a sentence: ``reason`` plus its ready date when known."""
    text = why["reason"]
    if why.get("ready_on") is not None:
        text += f"; ready on {why['ready_on']:%a %d %b}"
    elif why.get("kind") == "history":
        text += "; more days with this sensor are needed first"
    return text


def _why_entries(group: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(runner, driver label, reason sentence) for every not-computable driver of every runner."""
    out = []
    for rid, whys in zip(group["runner_id"], group["not_computable_why"], strict=True):
        for w in whys if whys is not None else ():
            out.append((rid, DRIVERS[w["driver"]].label, why_text(w)))
    return out


def _not_computable_groups(group: pd.DataFrame) -> tuple[list[str], list[dict]]:
    """(entries every runner of the cohort shares, groups of runners sharing the same reason)."""
    n = len(group)
    entries = _why_entries(group)
    by_pair = Counter((label, why) for _, label, why in entries)
    everyone = {pair for pair, c in by_pair.items() if c == n}
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    per_runner: dict[tuple[str, str], list[str]] = {}
    for rid, label, why in entries:
        if (label, why) not in everyone:
            per_runner.setdefault((rid, why), []).append(label)
    for (rid, why), labels in per_runner.items():
        groups.setdefault((why, tuple(sorted(labels))), []).append(rid)
    rows = []
    for (why, labels), ids in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        rows.append(
            {
                "drivers": ", ".join(labels),
                "why": why,
                "count": len(ids),
                "ids": ", ".join(sorted(ids)[:15]) + (f" … (+{len(ids) - 15})" if len(ids) > 15 else ""),
            }
        )
    nobody = [f"{label} ({why})" for label, why in sorted(everyone)]
    return nobody, rows


def render_cohort(
    out_dir: Path,
    cohort: str,
    report_date: dt.date,
    group: pd.DataFrame,
    history: pd.DataFrame,
    quality: QualitySummary | None,
    risk_table: pa.Table | None = None,
    params: RiskParams | None = None,
    plotter: RunnerTrendPlotter | None = None,
    docs_href: str | None = None,
) -> Path:
    """Write ``<cohort>.html`` (+ ``.parquet``, ``.csv``) for one cohort; returns the HTML path."""
    p = params or RiskParams()
    slug = cohort_slug(cohort)
    group = group.sort_values(["risk_score", "runner_id"], ascending=[False, True])
    flagged = group[group["risk_level"] != "low"]
    n = len(group)
    levels = {lvl: int((group["risk_level"] == lvl).sum()) for lvl in ("low", "elevated", "high")}
    start = report_date - dt.timedelta(days=TREND_DAYS - 1)
    own_plotter = plotter is None
    plotter = plotter or RunnerTrendPlotter()
    hist_by_runner = {}
    if len(flagged):
        sub = history[history["runner_id"].isin(set(flagged["runner_id"].head(MAX_PLOTS)))]
        hist_by_runner = {rid: g for rid, g in sub.groupby("runner_id")}
    shared = Counter((label, why) for _, label, why in _why_entries(group))
    cards = []
    for row in flagged.head(MAX_PLOTS).itertuples(index=False):
        drivers = [
            {
                **d,
                "grade_note": GRADE_NOTE.get(d["grade"], d["grade"]),
                "value_fmt": _fmt_value(d.get("value"), d.get("unit", "")),
                "baseline_fmt": _fmt_value(d.get("baseline"), d.get("unit", "")),
            }
            for d in row.drivers
        ]
        plot = None
        if row.runner_id in hist_by_runner:
            plot = plotter.render(hist_by_runner[row.runner_id], start, report_date)
        cards.append(
            {
                "runner_id": row.runner_id,
                "score": row.risk_score,
                "level": row.risk_level,
                "drivers": drivers,
                "sites": list(row.likely_sites),
                "plot": plot,
                "acwr": row.acwr if row.acwr is not None and np.isfinite(row.acwr) else None,
                "not_computable": [
                    f"{DRIVERS[w['driver']].label}: {why_text(w)}"
                    for w in row.not_computable_why
                    if shared[DRIVERS[w["driver"]].label, why_text(w)] < n
                ],
            }
        )
    if own_plotter:
        plotter.close()
    driver_counts = {DRIVERS[k].label: int((group[f"points_{k}"] > 0).sum()) for k in DRIVER_KEYS}
    site_counts = Counter(s for lst in flagged["likely_sites"] for s in lst)
    nobody, missing_groups = _not_computable_groups(group)
    profiles, cohort_profile = compensation_profiles(group, history, report_date, TREND_DAYS)
    top_reasons = Counter(d["label"] for lst in flagged["drivers"] for d in lst[:1])
    html = _env.get_template("report.html.j2").render(
        cohort=cohort,
        date=report_date.isoformat(),
        weekday=report_date.strftime("%A"),
        n=n,
        levels=levels,
        flagged=cards,
        table_rows=[
            {
                "runner_id": r.runner_id,
                "score": r.risk_score,
                "level": r.risk_level,
                # contested ACWR only when nothing else explains the flag
                "why": "; ".join(
                    d["reason"] for d in ([d for d in r.drivers if d["driver"] != "acwr"] or r.drivers)[:2]
                ),
                "sites": ", ".join(list(r.likely_sites)[:3]) or "–",
                "card": i < MAX_PLOTS,
            }
            for i, r in enumerate(flagged.itertuples(index=False))
        ],
        top_sites=site_counts.most_common(4),
        top_reasons=top_reasons.most_common(3),
        hist_png=score_histogram_png(group["risk_score"].to_numpy(dtype=float), p.elevated_at, p.high_at),
        drivers_png=driver_prevalence_png(driver_counts, n),
        nobody=nobody,
        missing_groups=missing_groups,
        profiles=profiles,
        cohort_profile=cohort_profile,
        quality=quality,
        docs_href=docs_href,
        model_version=RISK_MODEL_VERSION,
        elevated_at=p.elevated_at,
        high_at=p.high_at,
        grade_note=GRADE_NOTE,
        max_plots=MAX_PLOTS,
        files={"csv": f"{slug}.csv", "parquet": f"{slug}.parquet"},
    )
    html_path = out_dir / f"{slug}.html"
    _atomic_write(html_path, html.encode("utf-8"))
    _atomic_write(out_dir / f"{slug}.csv", csv_safe(flat_frame(group)).to_csv(index=False).encode("utf-8"))
    if risk_table is not None:
        buf = pa.BufferOutputStream()
        pq.write_table(risk_table, buf, compression="zstd")
        _atomic_write(out_dir / f"{slug}.parquet", buf.getvalue().to_pybytes())
    return html_path


def render_reports(
    paths: Paths,
    report_date: dt.date,
    scored: pd.DataFrame,
    history: pd.DataFrame,
    runners: pd.DataFrame,
    quality: QualitySummary | None,
    params: RiskParams | None = None,
) -> list[Path]:
    """One report per cohort for ``report_date``; returns the HTML paths (sorted by cohort)."""
    from pipelines.nightly.job import risk_to_arrow

    out_dir = paths.reports / report_date.isoformat()
    docs_href = None
    if quality is not None and quality.docs_index:
        docs_href = os.path.relpath(quality.docs_index, out_dir)
    plotter = RunnerTrendPlotter()
    out = []
    try:
        for cohort, group in sorted(scored.groupby("cohort"), key=lambda kv: kv[0]):
            out.append(
                render_cohort(
                    out_dir,
                    str(cohort),
                    report_date,
                    group,
                    history,
                    quality,
                    risk_to_arrow(group),
                    params,
                    plotter,
                    docs_href,
                )
            )
    finally:
        plotter.close()
    return out
