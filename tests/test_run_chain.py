"""`gluteflow run` end to end on a tiny fleet: every table, the catalog and a report, and no broker left."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from infra.settings import ENV_BOOTSTRAP, Paths
from infra.topics import ENV_TOPIC_PREFIX
from pipelines.catalog.builder import connect_catalog


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_run_chain_builds_lake_catalog_report_and_stops_its_broker(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_BOOTSTRAP, raising=False)
    monkeypatch.delenv(ENV_TOPIC_PREFIX, raising=False)
    paths = Paths(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "--data-dir", str(paths.root), "run"]
        + ["--runners", "3", "--days", "3", "--duration-scale", "0.05", "--no-fit"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # a normal run prints no stack trace and no library log noise, and its tables fit 80 columns
    for noise in ("Traceback", "WARNING", "ERROR", "apitools", "kafka.", "great_expectations"):
        assert noise not in proc.stdout + proc.stderr, noise
    assert "…" not in proc.stdout, [line for line in proc.stdout.splitlines() if "…" in line][:5]

    # the broker this run started (its pid is printed first) is gone, and its state file with it
    started = re.search(r"embedded Tansu, pid (\d+)", proc.stdout)
    assert started, proc.stdout[:2000]
    assert not _alive(int(started.group(1)))
    assert not (paths.broker_dir / "broker.json").exists()

    con = connect_catalog(paths.catalog)
    n = {
        t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("strides", "daily", "injury_risk", "runners")
    }
    assert n["runners"] == 3
    assert n["strides"] > 100
    assert n["daily"] == 3 * 3  # one row per runner per local date, rest days included
    assert n["injury_risk"] == 3
    reports = sorted(paths.reports.rglob("*.html"))
    assert reports, "no HTML report written"
    assert "report:" in proc.stdout and str(reports[0]) in proc.stdout
    # the example cohort query ran and printed its header
    assert "mean_risk" in proc.stdout
