"""Beam transforms of the daily job. DoFns are thin wrappers around :mod:`pipelines.daily.compute`.

Graph (one PTransform per concept, every step labelled)::

    partition dirs ─ ReadSessionPieces ─ GroupByKey(runner, session) ─ SummariseSessions ─┐
    runners dir ──── ReadProfiles ───────────────────────────────────────────────────────┴─ Flatten
      ─ GroupByKey(runner) ─ RunnerDailyRows ─ GroupByKey(month) ─ ValidateAndPublish

Only Create, ParDo, GroupByKey and Flatten are used (no side inputs, no tagged outputs), so the
same graph runs on the FnApiRunner, DaskRunner, Flink, Spark or Dataflow. Files are read and
written through paths on a filesystem every worker sees; the sink is the last step and is
idempotent (each date partition is replaced atomically).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.daily import compute
from schemas.daily_table import DAILY, DAILY_SORT

__all__ = [
    "DailyFromSummaries",
    "DailyJob",
    "ReadSessionPieces",
    "SummariseSessions",
    "ValidateAndPublish",
    "arrow_to_pandas",
    "daily_rows_to_arrow",
]

_COLUMNS = {
    "strides": compute.STRIDE_COLUMNS,
    "watch_records": compute.WATCH_COLUMNS,
    "sessions": compute.SESSION_COLUMNS,
}


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas with timestamp columns as int64 µs since the epoch (UTC)."""
    cols = []
    for f in table.schema:
        c = table[f.name]
        if pa.types.is_timestamp(f.type):
            c = c.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        cols.append(c)
    return pa.Table.from_arrays(cols, names=table.column_names).to_pandas()


def _read_dir(path: str, columns: list[str] | None) -> pa.Table | None:
    files = sorted(p for p in Path(path).glob("*.parquet") if not p.name.startswith("."))
    if not files:
        return None
    tables = []
    for f in files:
        have = pq.read_schema(f).names
        cols = [c for c in columns if c in have] if columns else None
        tables.append(pq.read_table(f, columns=cols))
    return pa.concat_tables(tables, promote_options="default")


class ReadSessionPieces(beam.DoFn):
    """(table, partition dir) -> ((runner_id, session_id), (table, DataFrame)) per session in the file."""

    def process(self, element: tuple[str, str]) -> Iterator[tuple[tuple[str, str], tuple[str, pd.DataFrame]]]:
        table, path = element
        t = _read_dir(path, _COLUMNS[table])
        if t is None or t.num_rows == 0:
            return
        df = arrow_to_pandas(t)
        for (runner, session), g in df.groupby(["runner_id", "session_id"], sort=True):
            yield (str(runner), str(session)), (table, g.reset_index(drop=True))


#: the GroupByMonth key under which flagged sessions and runners travel to the writer
PROBLEMS = "problems"


def problem(runner: str, session: str | None, exc: Exception) -> dict:
    """A flagged session or runner: who, why (a reason code and a readable detail)."""
    reason = getattr(exc, "reason", None) or type(exc).__name__
    return {"runner_id": runner, "session_id": session, "reason": reason, "detail": str(exc)[:300]}


class SummariseSessionFn(beam.DoFn):
    """((runner, session), pieces) -> (runner_id, ("session", summary dict)), or ("problem", dict) when
    the session's rows are inconsistent: that runner's session is flagged, the fleet goes on."""

    def process(self, element: tuple[tuple[str, str], Iterable[tuple[str, pd.DataFrame]]]) -> Iterator[Any]:
        (runner, session), pieces = element
        parts: dict[str, list[pd.DataFrame]] = {}
        for table, df in pieces:
            parts.setdefault(table, []).append(df)
        frames = {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}
        try:
            summary = compute.summarise_session(
                runner, session, frames.get("strides"), frames.get("watch_records"), frames.get("sessions")
            )
        except Exception as exc:  # any fault in one session's rows (issue 13): flag it, keep going
            yield runner, ("problem", problem(runner, session, exc))
            return
        if summary is not None:
            yield runner, ("session", summary)


class ReadProfilesFn(beam.DoFn):
    """runners table dir -> (runner_id, ("profile", latest profile dict)) per runner."""

    def process(self, path: str) -> Iterator[tuple[str, tuple[str, dict]]]:
        root = Path(path)
        files = [p for p in root.rglob("*.parquet") if not p.name.startswith(".")] if root.exists() else []
        if not files:
            return
        t = pa.concat_tables([pq.read_table(f) for f in sorted(files)], promote_options="default")
        if t.num_rows == 0:
            return
        df = arrow_to_pandas(t)
        sort = [c for c in ("profile_seq", "updated_at") if c in df]
        df = df.sort_values(["runner_id", *sort], kind="stable").drop_duplicates("runner_id", keep="last")
        for rec in df.to_dict("records"):
            prof = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rec.items()}
            yield str(prof["runner_id"]), ("profile", prof)


class RunnerDailyRowsFn(beam.DoFn):
    """(runner_id, [("session", summary) | ("profile", dict)]) -> (month, row dict) for first..last."""

    def __init__(self, first: str, last: str) -> None:
        self.first = first
        self.last = last

    def process(self, element: tuple[str, Iterable[tuple[str, Any]]]) -> Iterator[tuple[str, dict]]:
        runner, items = element
        summaries, profile = [], None
        for kind, value in items:
            if kind == "session":
                summaries.append(value)
            elif kind == "problem":
                yield PROBLEMS, value
            else:
                profile = value
        try:
            rows = compute.runner_daily_rows(
                runner,
                summaries,
                profile,
                dt.date.fromisoformat(self.first),
                dt.date.fromisoformat(self.last),
            )
        except Exception as exc:  # one runner's inconsistent rows (issue 13): flag the runner, not the fleet
            yield PROBLEMS, problem(runner, None, exc)
            return
        for rec in rows.to_dict("records"):
            yield rec["date"].isoformat()[:7], rec


def daily_rows_to_arrow(rows: pd.DataFrame) -> pa.Table:
    """Daily rows (pandas) -> Arrow table with the DAILY schema, sorted by date and runner."""
    df = rows.sort_values(["date", *DAILY_SORT], kind="stable").reset_index(drop=True)
    return pa.Table.from_pandas(df[DAILY.names], schema=DAILY, preserve_index=False)


def problems_file_name(run_id: str) -> str:
    return f"problems-{run_id}.json"


class ValidateAndPublishFn(beam.DoFn):
    """(month, rows) -> status per date: validate with the GE suite, publish passing dates.

    The whole month is validated once; when that fails each date is validated alone, so one bad
    date blocks only itself. For every date a JSON result is written to
    ``<quality>/daily/date=<d>.json`` (with ``run_id``, ``published`` and the readable failures);
    passing dates replace ``<lake>/daily/date=<d>/`` atomically.
    """

    def __init__(self, table_dir: str, quality_dir: str, run_id: str) -> None:
        self.table_dir = table_dir
        self.quality_dir = quality_dir
        self.run_id = run_id

    def _write_result(self, date: str, rows: int, published: bool, failures: list[str], result: dict) -> None:
        out = Path(self.quality_dir) / "daily" / f"date={date}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{self.run_id}.tmp")
        tmp.write_text(
            json.dumps(
                {
                    "table": "daily",
                    "date": date,
                    "run_id": self.run_id,
                    "rows": rows,
                    "published": published,
                    "failures": failures,
                    "validation": result,
                },
                default=str,
                indent=1,
            )
        )
        tmp.replace(out)

    def _write_problems(self, problems: list[dict]) -> None:
        """``<quality>/daily/problems-<run_id>.json``: the sessions and runners this run flagged."""
        out = Path(self.quality_dir) / "daily" / problems_file_name(self.run_id)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        problems = sorted(problems, key=lambda p: (p["runner_id"], p["session_id"] or ""))
        tmp.write_text(json.dumps({"table": "daily", "run_id": self.run_id, "flagged": problems}, indent=1))
        tmp.replace(out)

    def process(self, element: tuple[str, Iterable[dict]]) -> Iterator[dict]:
        from pipelines.lake import replace_partition
        from pipelines.quality.daily_suite import validate_daily

        month, records = element
        if month == PROBLEMS:
            self._write_problems(list(records))
            return
        df = pd.DataFrame(list(records))
        df = df.sort_values(["date", *DAILY_SORT], kind="stable").reset_index(drop=True)
        whole = validate_daily(df[DAILY.names])
        for date, g in df.groupby("date", sort=True):
            g = g[DAILY.names].reset_index(drop=True)
            v = whole if whole.success else validate_daily(g)
            d = date.isoformat()
            if v.success:
                replace_partition(
                    daily_rows_to_arrow(g), Path(self.table_dir), {"date": date}, sort_by=DAILY_SORT
                )
            self._write_result(
                d, len(g), v.success, v.failures, v.result if not v.success else {"success": True}
            )
            yield {"date": d, "rows": len(g), "published": v.success, "failures": v.failures}


class SummariseSessions(beam.PTransform):
    """Partition dirs of strides/watch_records/sessions -> (runner_id, ("session", summary))."""

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return (
            pcoll
            | "ReadSessionPieces" >> beam.ParDo(ReadSessionPieces())
            | "GroupBySession" >> beam.GroupByKey()
            | "SummariseSession" >> beam.ParDo(SummariseSessionFn())
        )


class DailyFromSummaries(beam.PTransform):
    """(session summaries, profiles) keyed by runner -> (month, daily row) for ``first..last``."""

    def __init__(self, first: dt.date, last: dt.date) -> None:
        super().__init__()
        self.first, self.last = first.isoformat(), last.isoformat()

    def expand(self, pcolls: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        return (
            pcolls
            | "FlattenRunnerInputs" >> beam.Flatten()
            | "GroupByRunner" >> beam.GroupByKey()
            | "RunnerDailyRows" >> beam.ParDo(RunnerDailyRowsFn(self.first, self.last))
        )


class ValidateAndPublish(beam.PTransform):
    """(month, row) -> per-date status dicts; passing dates are written to the lake."""

    def __init__(self, table_dir: str, quality_dir: str, run_id: str) -> None:
        super().__init__()
        self.args = (table_dir, quality_dir, run_id)

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return (
            pcoll
            | "GroupByMonth" >> beam.GroupByKey()
            | "ValidateAndPublishDates" >> beam.ParDo(ValidateAndPublishFn(*self.args))
        )


class DailyJob(beam.PTransform):
    """The whole daily job from input partition lists to published ``daily`` partitions."""

    def __init__(
        self,
        input_dirs: list[tuple[str, str]],
        runners_dir: str,
        first: dt.date,
        last: dt.date,
        table_dir: str,
        quality_dir: str,
        run_id: str,
    ) -> None:
        super().__init__()
        self.input_dirs, self.runners_dir = input_dirs, runners_dir
        self.first, self.last = first, last
        self.table_dir, self.quality_dir, self.run_id = table_dir, quality_dir, run_id

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        summaries = (
            pbegin
            | "InputPartitions" >> beam.Create(self.input_dirs or [("sessions", "/nonexistent")])
            | "SummariseSessions" >> SummariseSessions()
        )
        profiles = (
            pbegin
            | "RunnersTable" >> beam.Create([self.runners_dir])
            | "ReadProfiles" >> beam.ParDo(ReadProfilesFn())
        )
        return (
            (summaries, profiles)
            | "DailyRows" >> DailyFromSummaries(self.first, self.last)
            | "ValidateAndPublish" >> ValidateAndPublish(self.table_dir, self.quality_dir, self.run_id)
        )
