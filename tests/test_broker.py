"""`gluteflow broker start|status|stop` and `topics apply` through the CLI, with a real Tansu process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra import broker, topics
from infra.settings import ENV_BOOTSTRAP, ENV_DATA_DIR
from jobs.cli import app


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def pid_gone(pid: int) -> bool:
    """No such process (a reaped child leaves no /proc entry; a zombie would count as still there)."""
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture
def own_data_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv(ENV_BOOTSTRAP, raising=False)
    monkeypatch.setenv(topics.ENV_TOPIC_PREFIX, "brokertest.")
    data = tmp_path / "data"
    monkeypatch.setenv(ENV_DATA_DIR, str(data))
    return data


def test_start_status_topics_stop(own_data_dir):
    state_file = own_data_dir / "broker" / "broker.json"
    assert cli("broker", "status").exit_code == 1  # nothing started yet

    started = cli("broker", "start")
    pid = None
    try:
        assert started.exit_code == 0, started.output
        assert "up" in started.stdout
        state = json.loads(state_file.read_text())
        pid, bootstrap = state["pid"], state["bootstrap"]
        assert bootstrap.startswith("127.0.0.1:")
        assert b"tansu" in Path(f"/proc/{pid}/cmdline").read_bytes()

        status = cli("broker", "status")
        assert status.exit_code == 0, status.output
        assert "up" in status.stdout and bootstrap in status.stdout

        # a second start reuses the running broker
        again = cli("broker", "start")
        assert again.exit_code == 0 and f"pid {pid}" in again.stdout
        assert json.loads(state_file.read_text())["pid"] == pid

        # topics apply is idempotent
        first = cli("topics", "apply")
        assert first.exit_code == 0, first.output
        names = [topics.topic(k) for k in topics.declared()]
        assert all(f"{name}: created" in first.stdout for name in names), first.stdout
        second = cli("topics", "apply")
        assert second.exit_code == 0, second.output
        assert all(f"{name}: exists" in second.stdout for name in names), second.stdout
        assert "created" not in second.stdout

        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            assert set(names) <= set(admin.list_topics())
        finally:
            admin.close()
    finally:
        stopped = cli("broker", "stop")
    assert stopped.exit_code == 0, stopped.output
    assert f"pid {pid}" in stopped.stdout
    assert pid_gone(pid), f"Tansu pid {pid} still exists after stop"
    assert not state_file.exists()
    after = cli("broker", "status")
    assert after.exit_code == 1
    assert "not started" in after.stdout
    # stopping twice is harmless
    assert cli("broker", "stop").exit_code == 0


def test_external_cluster_starts_nothing(own_data_dir, kafka_bootstrap, monkeypatch):
    monkeypatch.setenv(ENV_BOOTSTRAP, kafka_bootstrap)
    started = cli("broker", "start")
    assert started.exit_code == 0, started.output
    assert "external cluster" in started.stdout and kafka_bootstrap in started.stdout
    assert not (own_data_dir / "broker").exists()  # no state file, no log: nothing launched

    status = cli("broker", "status")
    assert status.exit_code == 0 and "external" in status.stdout

    assert cli("broker", "stop").stdout.strip() == "no broker was running"
    assert broker.bootstrap_servers(broker.Paths.resolve()) == kafka_bootstrap


def test_commands_without_a_broker_fail_readably(own_data_dir):
    def err(result) -> str:  # rich wraps at the terminal width; compare the words
        return " ".join(result.stderr.split())

    result = cli("topics", "apply")
    assert result.exit_code == 1
    assert "no Kafka broker" in err(result) and "gluteflow broker start" in err(result)
    fit = cli("import-fit", "whatever.fit", "--runner", "r")
    assert fit.exit_code == 1 and "no Kafka broker" in err(fit)
    counts = cli("counts")
    assert counts.exit_code == 1 and "no Kafka broker" in err(counts)


def test_stale_state_file_is_not_trusted(own_data_dir):
    """A broker.json left by a crashed run (pid gone) reads as down, and start launches a fresh broker."""
    state_dir = own_data_dir / "broker"
    state_dir.mkdir(parents=True)
    dead_pid = 2**22 + 12345  # above the default pid_max: cannot exist
    (state_dir / "broker.json").write_text(json.dumps({"bootstrap": "127.0.0.1:1", "pid": dead_pid}))
    assert cli("broker", "status").exit_code == 1
    started = cli("broker", "start")
    try:
        assert started.exit_code == 0, started.output
        pid = json.loads((state_dir / "broker.json").read_text())["pid"]
        assert pid != dead_pid and os.path.exists(f"/proc/{pid}")
    finally:
        cli("broker", "stop")
    assert pid_gone(pid)


def test_broker_started_for_one_run_dies_with_a_killed_parent(own_data_dir, tmp_path):
    """A broker started with die_with_parent (gluteflow run, the test session, benches) does not outlive
    its parent even when the parent is SIGKILLed: Tansu keeps every message in memory."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys; from pathlib import Path; from infra import broker; from infra.settings import Paths;"
        "info = broker.start(Paths(Path(sys.argv[1])), die_with_parent=True); print(info.pid, flush=True);"
        "sys.stdin.read()"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "run")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        pid = int(parent.stdout.readline())
        assert broker._pid_alive(pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 15
        while broker._pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        alive = broker._pid_alive(pid)
        if alive:
            os.kill(pid, signal.SIGKILL)
        assert not alive, "Tansu outlived the process that started it"
    finally:
        if parent.poll() is None:
            parent.kill()
