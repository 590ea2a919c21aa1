"""Run Great Expectations suites on in-memory frames and write Data Docs.

One ephemeral GX context per run (no ``great_expectations.yml`` to maintain); a filesystem Data Docs site
under ``<data>/quality/data_docs/`` keeps every validation result readable after the run. A failed
suite is returned as data (:class:`QualitySummary`), and the caller decides to block publishing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["Check", "QualitySummary", "SuiteResult", "run_checks"]

log = logging.getLogger(__name__)


@dataclass
class Check:
    """One suite to run on one frame."""

    suite: str
    frame: pd.DataFrame
    expectations: list  # list[gx.expectations.Expectation]
    blocking: bool = True  # a failure blocks publishing


@dataclass
class SuiteResult:
    suite: str
    success: bool
    rows: int
    evaluated: int
    failed: int
    blocking: bool = True
    failures: list[str] = field(default_factory=list)  # one readable line per failed expectation


@dataclass
class QualitySummary:
    results: list[SuiteResult]
    docs_index: str | None = None

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results if r.blocking)

    def failures(self) -> list[str]:
        return [f"{r.suite}: {f}" for r in self.results if not r.success for f in r.failures]

    def to_json(self) -> str:
        return json.dumps({"success": self.success, **asdict(self)}, indent=2, default=str)


def _describe(res: object) -> str:
    cfg = res.expectation_config  # type: ignore[attr-defined]
    kw = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id",)}
    result = res.result or {}  # type: ignore[attr-defined]
    detail = ""
    if "unexpected_count" in result:
        detail = (
            f": {result.get('unexpected_count')} unexpected ({result.get('unexpected_percent', 0):.2f} %)"
        )
        sample = result.get("partial_unexpected_list") or []
        if sample:
            detail += f", e.g. {sample[:3]}"
    elif "observed_value" in result:
        detail = f": observed {result['observed_value']}"
    if res.exception_info and res.exception_info.get("raised_exception"):  # type: ignore[attr-defined]
        detail += f" (error: {res.exception_info.get('exception_message')})"  # type: ignore[attr-defined]
    return f"{cfg.type}({', '.join(f'{k}={v}' for k, v in kw.items())}){detail}"


def run_checks(checks: Sequence[Check], docs_dir: Path | None = None) -> QualitySummary:
    """Validate every check's frame against its expectations; write Data Docs to ``docs_dir``."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    ctx = gx.get_context(mode="ephemeral")
    try:
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    except Exception:  # older/newer GX without the setting: bars only
        pass
    actions = []
    if docs_dir is not None:
        docs_dir.mkdir(parents=True, exist_ok=True)
        ctx.add_data_docs_site(
            site_name="gluteflow",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["gluteflow"]))
    source = ctx.data_sources.add_pandas("lake")
    results: list[SuiteResult] = []
    for check in checks:
        asset = source.add_dataframe_asset(check.suite)
        batch_def = asset.add_batch_definition_whole_dataframe(f"{check.suite}_batch")
        suite = ctx.suites.add(gx.ExpectationSuite(name=check.suite))
        for exp in check.expectations:
            suite.add_expectation(exp)
        vd = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=f"{check.suite}_validation", data=batch_def, suite=suite)
        )
        cp = ctx.checkpoints.add(
            gx.Checkpoint(name=f"{check.suite}_checkpoint", validation_definitions=[vd], actions=actions)
        )
        run = cp.run(batch_parameters={"dataframe": check.frame})
        for vres in run.run_results.values():
            stats = vres.statistics
            failures = [_describe(r) for r in vres.results if not r.success]
            results.append(
                SuiteResult(
                    suite=check.suite,
                    success=bool(vres.success),
                    rows=len(check.frame),
                    evaluated=int(stats.get("evaluated_expectations", 0)),
                    failed=int(stats.get("unsuccessful_expectations", 0)),
                    blocking=check.blocking,
                    failures=failures,
                )
            )
    index = None
    if docs_dir is not None and (docs_dir / "index.html").exists():
        index = str(docs_dir / "index.html")
    return QualitySummary(results=results, docs_index=index)
