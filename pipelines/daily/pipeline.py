"""Build and run the daily Beam job; find the dates that late data made stale.

``run_daily(paths, first, last)`` reads the input partitions the dates need (UTC partitions
``first - LOOKBACK_DAYS - 2 .. last + 1``: local dates differ from UTC dates by up to a day),
runs :class:`pipelines.daily.transforms.DailyJob` on the chosen runner and returns the per-date
publication status (read back from the validation results the job wrote).

Runners: ``fnapi`` (local, default) or ``dask`` (``--dask_client_address`` in ``pipeline_args``);
anything else Beam accepts can be passed as ``--runner`` in ``pipeline_args``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from infra.settings import Paths
from pipelines.daily.compute import LOOKBACK_DAYS
from pipelines.daily.transforms import DailyJob, problems_file_name

__all__ = [
    "INPUT_TABLES",
    "DailyOptions",
    "DailyRunResult",
    "changed_range",
    "input_partitions",
    "partition_snapshot",
    "run_daily",
    "save_state",
]

INPUT_TABLES = ("strides", "watch_records", "sessions")
STATE_FILE = "daily_state.json"


class DailyOptions(PipelineOptions):
    """Options of the daily job (also settable as ``--data_dir`` etc. on any runner's command line)."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:  # noqa: ANN001 - Beam's argparse hook
        parser.add_argument("--data_dir", default=None, help="gluteflow data directory")
        parser.add_argument("--first_date", default=None, help="first local date (YYYY-MM-DD)")
        parser.add_argument("--last_date", default=None, help="last local date (YYYY-MM-DD)")


@dataclass
class DailyRunResult:
    """What a run published: per-date status with the readable GE failures of blocked dates."""

    first: dt.date
    last: dt.date
    run_id: str
    dates: list[dict] = field(default_factory=list)
    #: sessions and runners left out because their rows are inconsistent (runner_id, session_id, reason, detail)
    flagged: list[dict] = field(default_factory=list)

    @property
    def blocked(self) -> list[dict]:
        return [d for d in self.dates if not d["published"]]

    @property
    def rows(self) -> int:
        return sum(d["rows"] for d in self.dates if d["published"])


def _dates(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def input_partitions(paths: Paths, first: dt.date, last: dt.date) -> list[tuple[str, str]]:
    """``(table, partition dir)`` for every existing input partition the dates depend on."""
    lo = first - dt.timedelta(days=LOOKBACK_DAYS + 2)
    hi = last + dt.timedelta(days=1)
    out = []
    for table in INPUT_TABLES:
        root = paths.table(table)
        if not root.exists():
            continue
        for d in sorted(root.glob("date=*")):
            try:
                day = dt.date.fromisoformat(d.name.split("=", 1)[1])
            except ValueError:
                continue
            if lo <= day <= hi and any(d.glob("*.parquet")):
                out.append((table, str(d)))
    return out


def run_daily(
    paths: Paths,
    first: dt.date,
    last: dt.date,
    runner: str = "fnapi",
    pipeline_args: Sequence[str] = (),
) -> DailyRunResult:
    """Compute and publish ``daily`` for local dates ``first..last`` (inclusive)."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    run_id = uuid.uuid4().hex
    args = [
        f"--data_dir={paths.root}",
        f"--first_date={first.isoformat()}",
        f"--last_date={last.isoformat()}",
        *pipeline_args,
    ]
    options = PipelineOptions(args)
    if runner == "fnapi":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        beam_runner = FnApiRunner()
    elif runner == "dask":
        from apache_beam.runners.dask.dask_runner import DaskRunner

        beam_runner = DaskRunner()
    else:
        raise ValueError(f"unknown runner {runner!r} (fnapi | dask)")
    job = DailyJob(
        input_partitions(paths, first, last),
        str(paths.table("runners")),
        first,
        last,
        str(paths.table("daily")),
        str(paths.quality),
        run_id,
    )
    pipeline = beam.Pipeline(runner=beam_runner, options=options)
    _ = pipeline | "Daily" >> job
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        client = getattr(result, "client", None)  # DaskRunnerResult holds a distributed.Client
        if client is not None:
            client.close()
    flagged_file = paths.quality / "daily" / problems_file_name(run_id)
    flagged = json.loads(flagged_file.read_text())["flagged"] if flagged_file.exists() else []
    return DailyRunResult(first, last, run_id, _statuses(paths, first, last, run_id), flagged)


def _statuses(paths: Paths, first: dt.date, last: dt.date, run_id: str) -> list[dict]:
    out = []
    for d in _dates(first, last):
        f = paths.quality / "daily" / f"date={d.isoformat()}.json"
        if not f.exists():
            continue
        res = json.loads(f.read_text())
        if res.get("run_id") == run_id:
            out.append({k: res[k] for k in ("date", "rows", "published", "failures")})
    return out


# --- late data: which dates are stale --------------------------------------------------------


def partition_snapshot(paths: Paths) -> dict[str, dict[str, int]]:
    """``{table: {date: newest file mtime (ns)}}`` of every input partition."""
    snap: dict[str, dict[str, int]] = {}
    for table in INPUT_TABLES:
        root = paths.table(table)
        parts: dict[str, int] = {}
        if root.exists():
            for d in root.glob("date=*"):
                mtimes = [f.stat().st_mtime_ns for f in d.glob("*.parquet")]
                if mtimes:
                    parts[d.name.split("=", 1)[1]] = max(mtimes)
        snap[table] = parts
    return snap


def _state_path(paths: Paths) -> Path:
    return paths.state / STATE_FILE


def load_state(paths: Paths) -> dict:
    p = _state_path(paths)
    return json.loads(p.read_text()) if p.exists() else {}


def save_state(paths: Paths, snapshot: dict[str, dict[str, int]], first: dt.date, last: dt.date) -> None:
    """Record the input partitions a successful run saw (atomic write)."""
    p = _state_path(paths)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(
        json.dumps(
            {
                "partitions": snapshot,
                "last_run": {"first": first.isoformat(), "last": last.isoformat()},
                "updated_at": dt.datetime.now(dt.UTC).isoformat(),
            },
            indent=1,
        )
    )
    os.replace(tmp, p)


def changed_range(
    paths: Paths, snapshot: dict[str, dict[str, int]] | None = None
) -> tuple[dt.date, dt.date] | None:
    """Local dates to recompute after input partitions changed since the last successful run.

    A partition is changed when it is new or its newest file's mtime differs from the state file.
    The earliest affected local date is the earliest changed UTC date - 1 day (a session in a zone
    behind UTC belongs to the previous local date); the range runs to the latest input partition date (+1 day for zones ahead of UTC),
    because every later day's rolling values (EWMA, monotony, spike, baselines) depend on it.
    Returns None when nothing changed.
    """
    snapshot = snapshot if snapshot is not None else partition_snapshot(paths)
    seen = load_state(paths).get("partitions", {})
    changed = [
        dt.date.fromisoformat(d)
        for table, parts in snapshot.items()
        for d, mtime in parts.items()
        if seen.get(table, {}).get(d) != mtime
    ]
    if not changed:
        return None
    latest = max(dt.date.fromisoformat(d) for parts in snapshot.values() for d in parts)
    return min(changed) - dt.timedelta(days=1), latest + dt.timedelta(days=1)
