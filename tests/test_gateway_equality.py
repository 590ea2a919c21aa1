"""The fleet through the front door: simulate -> gateway -> Kafka -> stream gives the same tables as
simulate -> Kafka -> stream (the real CLI commands, the stream job as a black box)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from gateway.server import gateway_process
from infra import topics
from infra.settings import ENV_BOOTSTRAP, ENV_DATA_DIR, Paths
from pipelines.lake import read_table

REPO = Path(__file__).resolve().parents[1]
SIMULATE = ["simulate", "--runners", "3", "--days", "2", "--start", "2026-11-02", "--seed", "11"]
SIMULATE += ["--duration-scale", "0.05", "--no-progress"]
#: lake tables whose every row and column must match (dead letters differ in stage and source offsets,
#: so they are compared on what was rejected and why)
TABLES = ("strides", "watch_records", "sessions", "runners")


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"gluteflow {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _sorted(table: pa.Table) -> pa.Table:
    keys = [
        (name, "ascending")
        for name in table.column_names
        if not pa.types.is_nested(table.schema.field(name).type)
    ]
    return table.sort_by(keys)


def _lake(data: Path) -> dict[str, pa.Table]:
    paths = Paths(data)
    return {name: _sorted(read_table(paths.table(name))) for name in TABLES}


def _run(way: str, bootstrap: str, tmp_path: Path) -> tuple[dict[str, pa.Table], Counter]:
    data = tmp_path / way
    env = {
        **os.environ,
        ENV_BOOTSTRAP: bootstrap,
        ENV_DATA_DIR: str(data),
        topics.ENV_TOPIC_PREFIX: f"t{uuid.uuid4().hex[:10]}.",
    }
    _cli(env, "topics", "apply")
    if way == "gateway":
        # the whole simulated fleet is one client here: the per-device limit is for real devices
        with gateway_process(env, data / "gateway.log", ["--rate-limit", "1000/second"]) as gw:
            out = _cli(env, *SIMULATE, "--via", gw.url)
    else:
        out = _cli(env, *SIMULATE)
    assert "simulated 3 runners x 2 days" in out
    _cli(env, "stream", "--until-idle", "0")
    letters = read_table(Paths(data).table("dead_letters"))
    keys = ["reason", "runner_id", "device_id", "session_id", "seq"]
    return _lake(data), Counter(
        tuple(r.values()) for r in letters.select(keys).to_pylist()
    ) if letters.num_rows else Counter()


@pytest.mark.timeout(900)
def test_simulate_through_the_gateway_gives_the_same_strides(kafka_bootstrap: str, tmp_path: Path) -> None:
    direct, direct_letters = _run("direct", kafka_bootstrap, tmp_path)
    gateway, gateway_letters = _run("gateway", kafka_bootstrap, tmp_path)
    assert direct["strides"].num_rows > 500
    for name in TABLES:
        assert gateway[name].schema == direct[name].schema, name
        assert gateway[name].num_rows == direct[name].num_rows, name
        assert gateway[name].equals(direct[name]), f"{name} differs through the gateway"
    assert gateway_letters == direct_letters  # the same inputs rejected for the same reasons
