"""Two stream jobs on one data dir (issue 13, item 6): the second is refused with one clear line naming
the first; a killed job leaves no stale lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.settings import Paths

REPO = Path(__file__).resolve().parents[1]


def _lock_pid(lock: Path) -> int | None:
    try:
        return json.loads(lock.read_text()).get("pid")
    except (OSError, ValueError):
        return None


@pytest.mark.timeout(120)
def test_second_stream_job_on_one_data_dir_is_refused(kafka: str, paths: Paths) -> None:
    env = {**os.environ, "GLUTEFLOW_DATA_DIR": str(paths.root), "KAFKA_BOOTSTRAP_SERVERS": kafka}
    cmd = [sys.executable, "-m", "jobs.cli", "stream"]
    lock = paths.state / "stream" / "lock"
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _lock_pid(lock) != first.pid:  # the first job holds the lock
            assert first.poll() is None, first.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the first stream job never took its lock"
            time.sleep(0.05)
        second = subprocess.run(
            [*cmd, "--until-idle", "0"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 1, second.stdout + second.stderr
        err = " ".join(second.stderr.split())
        assert "already running" in err and f"pid {first.pid}" in err and str(paths.root) in err, err
        assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) <= 3
        assert first.poll() is None  # the first one is untouched
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    # SIGKILL released the lock: the next job runs
    third = subprocess.run(
        [*cmd, "--until-idle", "0"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert third.returncode == 0, third.stderr[-2000:]
