"""Crash safety: SIGKILL `gluteflow stream` at random moments during a replay; the rerun's strides table
equals a clean run's, every column (no lost rows, no duplicates, no changed values)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from table_equality import assert_tables_equal
from test_stream_job import fleet, produce  # tests/ is on sys.path (rootdir conftest)

from infra.settings import Paths
from jobs.stream_driver import StreamOptions, load_checkpoint, run
from pipelines.lake import read_table
from schemas.tables import STRIDES

REPO = Path(__file__).resolve().parents[1]
MAX_BATCH = 250_000  # ~60 messages per batch: many batches to be killed in


def _strides(paths: Paths):
    return read_table(paths.table("strides"), STRIDES)


def _batch(paths: Paths) -> int:
    try:
        return int(load_checkpoint(paths)["batch"])
    except (ValueError, KeyError):  # never torn (atomic replace), but be safe
        return -1


@pytest.mark.timeout(150)
def test_sigkill_at_random_moments_then_rerun_equals_clean_run(kafka: str, tmp_path: Path) -> None:
    produce(kafka, [e for _, ev in fleet(3, 40) for e in ev])
    clean = Paths(tmp_path / "clean").ensure()
    results = run(StreamOptions(kafka, clean, max_batch_bytes=MAX_BATCH), until_idle_s=0.0)
    assert len(results) >= 6, len(results)
    want = _strides(clean)

    crashed = Paths(tmp_path / "crashed").ensure()
    env = {**os.environ, "GLUTEFLOW_DATA_DIR": str(crashed.root), "KAFKA_BOOTSTRAP_SERVERS": kafka}
    cmd = [
        sys.executable,
        "-m",
        "jobs.cli",
        "stream",
        "--until-idle",
        "0",
        "--max-batch-bytes",
        str(MAX_BATCH),
    ]
    rng = np.random.default_rng(7)
    kills = 0
    for _ in range(6):
        if kills >= 3:
            break
        # kill at a random moment once the process is doing work: within 0-1.5 s after it committed a
        # batch (inside the next pipeline run, the checkpoint write or the publish step)
        before = _batch(crashed)
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _batch(crashed) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 1.5)))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 3, kills
    assert _batch(crashed) < len(results), "the kills came too late to interrupt the replay"
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_tables_equal(_strides(crashed), want, "stride_id")  # every column, no duplicates
