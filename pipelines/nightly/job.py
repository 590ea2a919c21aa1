"""The nightly job: risk -> quality -> publish -> catalog rebuild -> report.

Plain pyarrow/DuckDB/pandas over the lake (no Beam needed: one vectorised pass over ~56 days of the
daily table; 10,000 runners take seconds). Idempotent: the ``injury_risk`` partition of the report date
is replaced as a whole and the reports are rewritten atomically, so a rerun yields the same outputs.
A failed blocking quality suite raises :class:`QualityGateFailed` before anything is published.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from infra.settings import Paths
from pipelines import lake
from pipelines.nightly.inputs import load_daily_window, load_runners, load_sensors_worn
from pipelines.quality import risk_suite, strides_suite
from pipelines.quality.data_docs import Check, QualitySummary, run_checks
from pipelines.science.risk import RiskParams, build_features, explain_not_computable, score_features
from schemas.risk_table import INJURY_RISK, RISK_MODEL_VERSION

__all__ = ["NightlyResult", "QualityGateFailed", "compute_risk", "risk_to_arrow", "run_nightly"]

#: days of daily history read per night (8 weeks for the report's trends; >= 37 for the spike)
HISTORY_DAYS = 56
UNASSIGNED = "unassigned"


class QualityGateFailed(RuntimeError):
    """A blocking suite failed: nothing was published."""

    def __init__(self, summary: QualitySummary):
        self.summary = summary
        super().__init__("quality gate failed: " + "; ".join(summary.failures()[:10]))


@dataclass
class NightlyResult:
    report_date: dt.date
    runners: int
    levels: dict[str, int]
    risk_path: Path | None
    reports: list[Path]
    quality: QualitySummary
    catalog: Path | None
    timings_s: dict[str, float] = field(default_factory=dict)


def compute_risk(
    history: pd.DataFrame,
    runners: pd.DataFrame,
    report_date: dt.date,
    params: RiskParams | None = None,
    worn: dict[str, set[str]] | None = None,
) -> pd.DataFrame:
    """Score every runner with daily rows in the window; one row per runner, INJURY_RISK columns.
    ``worn``: sensor kinds each runner's sessions declared (for the true reason of a missing driver)."""
    p = params or RiskParams()
    feats = build_features(history, report_date, p)
    # runners with no run in the spike window still get a row (they may have a recent spike-free history)
    scored = score_features(feats, p)
    scored["not_computable_why"] = explain_not_computable(scored, worn, report_date, p)
    cohorts = runners.set_index("runner_id")["cohort"] if len(runners) else pd.Series(dtype=object)
    cohort = scored["runner_id"].map(cohorts)
    if "cohort" in history.columns and len(history):
        latest = (
            history.dropna(subset=["cohort"]).sort_values("local_date").groupby("runner_id")["cohort"].last()
        )
        cohort = cohort.fillna(scored["runner_id"].map(latest))
    scored["cohort"] = cohort.fillna(UNASSIGNED).astype(str)
    last_off = scored["last_run_offset"].to_numpy()
    scored["last_run_date"] = [report_date - dt.timedelta(days=int(o)) if o >= 0 else None for o in last_off]
    scored["spike_days_ago"] = scored["spike_days_ago"].where(scored["spike_days_ago"] >= 0, None)
    scored["model_version"] = RISK_MODEL_VERSION
    scored["date"] = report_date
    return scored


def risk_to_arrow(scored: pd.DataFrame) -> pa.Table:
    """The scored frame as an INJURY_RISK table (column order and types from the contract)."""
    cols = {}
    n = len(scored)
    for f in INJURY_RISK:
        if f.name in scored.columns:
            values = scored[f.name].tolist()
        else:
            values = [None] * n
        if pa.types.is_floating(f.type):
            values = [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values]
        if pa.types.is_integer(f.type):
            values = [None if v is None or (isinstance(v, float) and np.isnan(v)) else int(v) for v in values]
        cols[f.name] = pa.array(values, type=f.type)
    return pa.table(cols, schema=INJURY_RISK)


def _daily_checks(paths: Paths, report_date: dt.date) -> list[Check]:
    """The daily table's own suite (pipelines.quality.daily_suite) on the report date's partition."""
    try:
        from pipelines.quality import daily_suite
        from schemas.daily_table import DAILY
    except ImportError:
        return []
    exps_fn = getattr(daily_suite, "expectations", None) or getattr(daily_suite, "_expectations", None)
    pdir = paths.table("daily") / f"date={report_date.isoformat()}"
    if exps_fn is None or not any(pdir.glob("*.parquet")):
        return []
    frame = lake.read_table(paths.table("daily"), DAILY, filter=ds.field("date") == report_date).to_pandas()
    return [Check(getattr(daily_suite, "SUITE_NAME", "daily"), frame, list(exps_fn()))]


def run_nightly(
    paths: Paths,
    report_date: dt.date,
    *,
    params: RiskParams | None = None,
    report: bool = True,
    catalog: bool = True,
    data_docs: bool = True,
    progress: Callable[[str], None] | None = None,
) -> NightlyResult:
    """Risk -> quality -> publish -> catalog -> report for one night. See the module docstring."""
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    say("reading daily history and runners")
    start = report_date - dt.timedelta(days=HISTORY_DAYS - 1)
    history = load_daily_window(paths, start, report_date)
    runners = load_runners(paths)
    worn = load_sensors_worn(paths, start, report_date)
    timings["read"] = time.perf_counter() - t0

    t = time.perf_counter()
    say(f"scoring {history['runner_id'].nunique()} runners")
    scored = compute_risk(history, runners, report_date, params, worn)
    risk_table = risk_to_arrow(scored)
    timings["score"] = time.perf_counter() - t

    t = time.perf_counter()
    say("validating (Great Expectations)")
    checks = [
        Check(
            risk_suite.SUITE_NAME, risk_suite.frame_for_validation(scored, params), risk_suite.expectations()
        )
    ]
    strides = strides_suite.load(paths, report_date)
    if strides is not None:
        checks.insert(0, Check(strides_suite.SUITE_NAME, strides, strides_suite.expectations()))
    checks[len(checks) - 1 : len(checks) - 1] = _daily_checks(paths, report_date)
    summary = run_checks(checks, paths.quality / "data_docs" if data_docs else None)
    _write_summary(paths, report_date, summary)
    timings["quality"] = time.perf_counter() - t
    if not summary.success:
        raise QualityGateFailed(summary)

    t = time.perf_counter()
    say("publishing injury_risk")
    risk_path = lake.replace_partition(
        risk_table, paths.table("injury_risk"), {"date": report_date}, sort_by=["cohort", "runner_id"]
    )
    timings["publish"] = time.perf_counter() - t

    catalog_path = None
    if catalog:
        t = time.perf_counter()
        say("rebuilding the DuckDB catalog")
        from pipelines.catalog.builder import build_catalog

        catalog_path = build_catalog(paths)
        timings["catalog"] = time.perf_counter() - t

    reports: list[Path] = []
    if report:
        t = time.perf_counter()
        say("rendering reports")
        from pipelines.report.render import render_reports

        reports = render_reports(paths, report_date, scored, history, runners, summary)
        timings["report"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    levels = {lvl: int((scored["risk_level"] == lvl).sum()) for lvl in ("low", "elevated", "high")}
    return NightlyResult(
        report_date=report_date,
        runners=len(scored),
        levels=levels,
        risk_path=risk_path,
        reports=reports,
        quality=summary,
        catalog=catalog_path,
        timings_s=timings,
    )


def _write_summary(paths: Paths, report_date: dt.date, summary: QualitySummary) -> Path:
    out = paths.quality / "results" / f"nightly-{report_date.isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(summary.to_json())
    tmp.replace(out)
    return out


def summary_json(result: NightlyResult) -> str:
    return json.dumps(
        {
            "date": result.report_date.isoformat(),
            "runners": result.runners,
            "levels": result.levels,
            "reports": [str(r) for r in result.reports],
            "quality_success": result.quality.success,
            "timings_s": {k: round(v, 3) for k, v in result.timings_s.items()},
        },
        indent=2,
    )
