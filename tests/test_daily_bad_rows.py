"""One runner's bad rows never stop the daily job for everyone (issue 13, item 2): an end marker with no
start (accepted by earlier stream jobs) made every `gluteflow daily` over its date fail with
``ValueError: min() arg is an empty sequence``. Now the session is flagged with its reason, and every
other row of the fleet is what it is without the bad row."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
from test_daily_job import FIRST, daily, write_inputs  # tests/ is on sys.path (rootdir conftest)
from typer.testing import CliRunner

from infra.settings import Paths
from jobs.cli import app
from pipelines.daily.synthetic import random_traits, tables_for_fleet
from pipelines.lake import write_partitioned
from schemas.tables import SESSIONS


def _end_marker_only(runner: str, session: str, day: dt.date) -> pa.Table:
    t = dt.datetime(day.year, day.month, day.day, 18, tzinfo=dt.UTC)
    row = {
        "runner_id": runner,
        "device_id": f"{runner}.watch",
        "session_id": session,
        "seq": 7,
        "timestamp": t,
        "marker": "end",
        "source": "device",
        "sport": "running",
        "sub_sport": None,
        "sensors": "watch",
        "total_elapsed_s": 1800.0,
        "total_distance_m": 5000.0,
        "avg_heart_rate_bpm": None,
        "avg_cadence_spm": None,
        "date": day,
    }
    return pa.Table.from_pylist([row], schema=SESSIONS)


def test_end_marker_with_no_start_is_flagged_and_the_fleet_is_computed(tmp_path) -> None:
    tables = tables_for_fleet(random_traits(3, seed=2), FIRST, 12, stride_every=6, minutes=(20, 30))
    runner = tables["runners"]["runner_id"][0].as_py()
    day = FIRST + dt.timedelta(days=9)
    clean, bad = Paths(tmp_path / "clean").ensure(), Paths(tmp_path / "bad").ensure()
    write_inputs(clean, tables)
    write_inputs(bad, tables)
    write_partitioned(
        _end_marker_only(runner, "orphan-end", day), bad.table("sessions"), ["date"], "part-9.parquet"
    )

    args = ["daily", "--from", (day - dt.timedelta(days=2)).isoformat(), "--to", day.isoformat()]
    ok = CliRunner().invoke(app, ["--data-dir", str(clean.root), *args])
    res = CliRunner().invoke(app, ["--data-dir", str(bad.root), *args])
    assert ok.exit_code == 0, ok.output
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "flagged 1 session" in out and f"runner {runner}, session orphan-end: no_start_time" in out, out
    assert "Traceback" not in res.output and "min()" not in res.output
    # the whole fleet's daily rows, every column, are those of the lake without the bad row
    assert daily(bad).num_rows == 3 * 3 and daily(bad).equals(daily(clean))
    flagged = list((bad.quality / "daily").glob("problems-*.json"))
    assert len(flagged) == 1
    assert [
        (f["runner_id"], f["session_id"], f["reason"]) for f in json.loads(flagged[0].read_text())["flagged"]
    ] == [(runner, "orphan-end", "no_start_time")]
    assert not list((clean.quality / "daily").glob("problems-*.json"))
