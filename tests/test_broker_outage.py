"""The broker goes away under a running stream job (issue 13, item 7): stopped, the job ends with one
clear line (what, where, what to do) and a non-zero exit; paused, it says that it is waiting and, once
the broker answers again, finishes with the same strides as a run that saw no pause."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_bad_input_suite import assert_rows_equal  # tests/ is on sys.path (rootdir conftest)
from test_stream_crash import _batch
from test_stream_job import fleet, produce
from test_stream_offsets import strides_of

from infra import broker, topics
from infra.settings import ENV_BOOTSTRAP, Paths
from jobs.stream_driver import StreamOptions, run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def own_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A broker of this test's own (it is stopped or paused), with the input produced to it."""
    paths = Paths(tmp_path / "broker").ensure()
    info = broker.start(paths, die_with_parent=True)
    monkeypatch.setenv(topics.ENV_TOPIC_PREFIX, f"o{uuid.uuid4().hex[:8]}.")
    monkeypatch.setenv(ENV_BOOTSTRAP, info.bootstrap)
    topics.apply(info.bootstrap)
    produce(info.bootstrap, [e for _, ev in fleet(n_runners=2, duration_s=30) for e in ev])
    try:
        yield paths, info
    finally:
        os.kill(info.pid, signal.SIGCONT) if broker.status(paths)[1] else None
        broker.stop(paths)


def _stream(data: Paths, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "jobs.cli",
        "--data-dir",
        str(data.root),
        "stream",
        "--max-batch-bytes",
        "300000",
    ]
    with open(out, "w") as f:
        return subprocess.Popen(
            [*cmd, *extra],
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=f,
            stderr=subprocess.STDOUT,
        )


def _wait_for(condition, what: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None or condition(), f"the job exited before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.timeout(300)
def test_stopped_broker_ends_the_job_with_one_clear_line(own_broker, tmp_path: Path) -> None:
    paths, info = own_broker
    data, out = Paths(tmp_path / "data").ensure(), tmp_path / "out.txt"
    proc = _stream(data, out)  # runs until stopped
    try:
        _wait_for(lambda: _batch(data) >= 1, "a first batch", proc)
        broker.stop(paths)
        proc.wait(timeout=200)  # a publish under way gives up after 45 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text()
    assert proc.returncode == 1, text[-3000:]
    assert "Traceback" not in text and "ECONNREFUSED" not in text, text[-3000:]
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text[-3000:]
    assert (
        info.bootstrap in errors[0] and "not running" in errors[0] and "gluteflow broker start" in errors[0]
    )


@pytest.mark.timeout(400)
def test_paused_broker_is_waited_for_and_the_results_are_the_same(own_broker, tmp_path: Path) -> None:
    paths, info = own_broker
    data, out = Paths(tmp_path / "data").ensure(), tmp_path / "out.txt"
    proc = _stream(data, out, "--until-idle", "5")
    try:
        _wait_for(lambda: _batch(data) >= 1, "a first batch", proc)
        os.kill(info.pid, signal.SIGSTOP)
        _wait_for(lambda: "waiting for the Kafka broker" in out.read_text(), "the waiting message", proc)
        os.kill(info.pid, signal.SIGCONT)
        proc.wait(timeout=200)
    finally:
        os.kill(info.pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = " ".join(out.read_text().split())
    assert proc.returncode == 0, text[-3000:]
    assert f"waiting for the Kafka broker at {info.bootstrap}" in text and "answers again" in text, text[
        -3000:
    ]
    assert "Traceback" not in text
    clean = Paths(tmp_path / "clean").ensure()
    run(StreamOptions(info.bootstrap, clean, max_batch_bytes=300_000), until_idle_s=0.0)
    for runner in ("r000", "r001"):
        want = strides_of(clean, runner)
        assert len(want) > 60
        assert_rows_equal(strides_of(data, runner), want, "strides")
