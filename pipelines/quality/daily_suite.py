"""Great Expectations (v1 API) suite guarding the ``daily`` table before a date is published.

An ephemeral context with a pandas datasource validates one date's rows; a failure blocks that
date's publication. :func:`validate_daily` returns a :class:`DailyValidation` with the pass/fail
flag, a short human-readable list of failed expectations and the full result as JSON.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from schemas.daily_table import COMPONENT_NAMES, DAILY

__all__ = ["DailyValidation", "build_suite", "validate_daily"]

SUITE_NAME = "daily"


@dataclass
class DailyValidation:
    """Outcome of validating one batch of daily rows."""

    success: bool
    failures: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        return "ok" if self.success else "; ".join(self.failures)


def _expectations() -> list:
    import great_expectations as gx

    E = gx.expectations
    ex = [
        E.ExpectTableColumnsToMatchSet(column_set=list(DAILY.names), exact_match=True),
        E.ExpectColumnValuesToNotBeNull(column="runner_id"),
        E.ExpectColumnValuesToNotBeNull(column="date"),
        E.ExpectColumnValuesToNotBeNull(column="time_zone"),
        E.ExpectCompoundColumnsToBeUnique(column_list=["runner_id", "date"]),
        E.ExpectColumnValuesToBeBetween(column="sessions", min_value=0, max_value=50),
        E.ExpectColumnValuesToBeBetween(column="duration_s", min_value=0, max_value=86_400),
        E.ExpectColumnValuesToBeBetween(column="distance_m", min_value=0, max_value=400_000),
        E.ExpectColumnValuesToBeBetween(column="longest_run_m", min_value=0, max_value=400_000),
        E.ExpectColumnValuesToBeBetween(column="steps", min_value=0, max_value=500_000),
        E.ExpectColumnValuesToBeBetween(column="trimp_banister", min_value=0, max_value=3_000),
        E.ExpectColumnValuesToBeBetween(column="trimp_edwards", min_value=0, max_value=7_200),
        E.ExpectColumnValuesToBeBetween(column="impact_load_g", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="acute_load_trimp", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="chronic_load_trimp", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="acwr", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="monotony_7d", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="strain_7d", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="spike_ratio", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="hr_coverage", min_value=0, max_value=1),
        E.ExpectColumnValuesToBeBetween(column="hr_max_bpm_used", min_value=100, max_value=240),
        E.ExpectColumnValuesToBeBetween(column="hr_rest_bpm_used", min_value=25, max_value=120),
        E.ExpectColumnValuesToBeInSet(column="hr_params_source", value_set=["profile", "estimated", "mixed"]),
        E.ExpectColumnValuesToBeBetween(column="cadence_spm", min_value=60, max_value=260),
        E.ExpectColumnValuesToBeBetween(column="compensation_score", min_value=0, max_value=100),
        E.ExpectColumnValuesToBeBetween(
            column="compensation_components_available", min_value=0, max_value=len(COMPONENT_NAMES)
        ),
    ]
    for c in COMPONENT_NAMES:
        ex.append(E.ExpectColumnValuesToBeBetween(column=f"{c}_points", min_value=0, max_value=100))
        ex.append(E.ExpectColumnValuesToNotBeNull(column=f"{c}_computable"))
    return ex


def build_suite(context: Any) -> Any:
    """Register the ``daily`` expectation suite in ``context`` and return it."""
    import great_expectations as gx

    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME))
    for e in _expectations():
        suite.add_expectation(e)
    return suite


class _Validator:
    """An ephemeral context, datasource and suite, built once per process (GE setup is slow)."""

    def __init__(self) -> None:
        import great_expectations as gx

        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        self.context = gx.get_context(mode="ephemeral")
        try:  # no progress bars inside a batch job
            from great_expectations.data_context.types.base import ProgressBarsConfig

            self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        except Exception:  # pragma: no cover - older/newer GE layouts
            pass
        source = self.context.data_sources.add_pandas("daily_source")
        asset = source.add_dataframe_asset("daily_rows")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole")
        self.suite = build_suite(self.context)

    def validate(self, df: pd.DataFrame) -> DailyValidation:
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": df})
        res = batch.validate(self.suite, result_format="SUMMARY")
        result = res.to_json_dict()
        failures = []
        for r in result.get("results", []):
            if r.get("success"):
                continue
            cfg = r.get("expectation_config", {})
            kw = {k: v for k, v in cfg.get("kwargs", {}).items() if k not in ("batch_id",)}
            col = kw.pop("column", None) or kw.pop("column_list", None)
            detail = r.get("result", {}) or {}
            n_bad = detail.get("unexpected_count")
            sample = detail.get("partial_unexpected_list", [])[:3]
            exc = (r.get("exception_info") or {}).get("exception_message")
            failures.append(
                f"{cfg.get('type')}({col}{', ' + json.dumps(kw, default=str) if kw else ''})"
                + (f": {n_bad} rows, e.g. {sample}" if n_bad else "")
                + (f": {exc}" if exc else "")
            )
        return DailyValidation(bool(res.success), failures, result)


_VALIDATOR: _Validator | None = None


def validate_daily(df: pd.DataFrame) -> DailyValidation:
    """Validate daily rows (one date or several) with the ``daily`` suite."""
    global _VALIDATOR
    if _VALIDATOR is None:
        _VALIDATOR = _Validator()
    return _VALIDATOR.validate(df)
