"""Shards of a stream batch: partition assignment, the co-partitioning guard, and shard processes that
die with their driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_stream_job import fleet, produce  # tests/ is on sys.path (rootdir conftest)

from infra import topics
from infra.kafka_io import make_producer
from infra.settings import Paths
from jobs.stream_driver import BatchPlan, StreamOptions, load_checkpoint, plan_shards, run
from pipelines.io.kafka_source import PartitionSpec
from pipelines.lake import read_table
from pipelines.stream.synthetic import make_session
from schemas.codec import encode
from schemas.tables import STRIDES

REPO = Path(__file__).resolve().parents[1]
T0 = 1_767_225_600_000_000


def _plan(messages: dict[tuple[str, int], int], counts: dict[str, int]) -> BatchPlan:
    specs = [PartitionSpec("b", topics.topic(k), p, 0, n) for (k, p), n in messages.items()]
    return BatchPlan(specs, {}, sum(messages.values()), {topics.topic(k): n for k, n in counts.items()})


COUNTS = {"sensor_blocks": 6, "watch_records": 6, "sessions": 6, "runner_profiles": 1, "dead_letters": 3}


def test_plan_shards_balances_partitions_and_keeps_profiles_on_shard_zero() -> None:
    messages = {("sensor_blocks", p): n for p, n in enumerate([900, 100, 500, 400, 0, 300])}
    messages |= {("sessions", 0): 2, ("sessions", 2): 2, ("runner_profiles", 0): 5, ("dead_letters", 1): 3}
    shards = plan_shards(_plan({k: v for k, v in messages.items() if v}, COUNTS), 2)
    assert len(shards) == 2
    assert set().union(*(s.owned for s in shards)) == set(range(6))  # every index has one owner
    assert not shards[0].owned & shards[1].owned
    load = [
        sum(s.stop - s.start for s in sh.specs if s.topic == topics.topic("sensor_blocks")) for sh in shards
    ]
    assert sorted(load) == [1000, 1200], load  # the best split of {900, 500, 400, 300, 100}
    for sh in shards:  # a runner-keyed topic's partition goes where its index is owned
        for s in sh.specs:
            if s.topic in (topics.topic("sensor_blocks"), topics.topic("sessions")):
                assert s.partition in sh.owned
    others = {topics.topic("runner_profiles"), topics.topic("dead_letters")}
    assert {s.topic for s in shards[0].specs} >= others
    assert not {s.topic for s in shards[1].specs} & others


def test_plan_shards_uses_one_shard_when_topics_are_not_co_partitioned() -> None:
    messages = {("sensor_blocks", 0): 10, ("sensor_blocks", 1): 10, ("sessions", 0): 1}
    shards = plan_shards(_plan(messages, {**COUNTS, "sessions": 3}), 2)
    assert len(shards) == 1 and len(shards[0].specs) == 3
    assert len(plan_shards(_plan(messages, COUNTS), 1)) == 1


@pytest.mark.timeout(120)
def test_a_session_split_over_two_shards_is_refused_before_the_commit(kafka: str, paths: Paths) -> None:
    """A producer with another partitioner put one session's blocks on partitions that land in two
    shards: the batch must fail before its commit point instead of writing two half-sessions."""
    _, blocks, markers = make_session("r5", "r5-s1", T0, 30, seed=5)
    producer = make_producer(kafka)
    name = topics.topic("sensor_blocks")
    for i, b in enumerate(blocks):
        producer.send(name, key=b.key, value=encode(b), partition=i % 2)  # partitions 0 and 1
    producer.send(topics.topic("sessions"), key=markers[0].key, value=encode(markers[0]), partition=0)
    producer.flush()
    producer.close()
    with pytest.raises(RuntimeError, match="not co-partitioned"):
        run(StreamOptions(kafka, paths, workers=2), until_idle_s=0.0)
    assert load_checkpoint(paths)["batch"] == 0  # nothing committed
    assert read_table(paths.table("strides"), STRIDES).num_rows == 0
    # one process owns every partition: the same input is processed
    results = run(StreamOptions(kafka, paths, workers=1), until_idle_s=0.0)
    assert sum(r.counters.get("strides_out", 0) for r in results) > 20


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out |= {int(c) for c in (task / "children").read_text().split()}
    except FileNotFoundError:
        pass
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.timeout(120)
def test_shard_processes_die_with_a_killed_driver(kafka: str, tmp_path: Path) -> None:
    """SIGKILL the driver as soon as its first batch has forked two shards: the shards must die with it
    (an orphan would finish its pipeline and write its result into staging, racing the rerun)."""
    produce(kafka, [e for _, ev in fleet(3, 40) for e in ev])  # one batch at the default cap
    data = tmp_path / "data"
    env = {**os.environ, "GLUTEFLOW_DATA_DIR": str(data), "KAFKA_BOOTSTRAP_SERVERS": kafka}
    cmd = [sys.executable, "-m", "jobs.cli", "stream", "--until-idle", "0", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        shards: set[int] = set()
        while len(shards) < 2 and proc.poll() is None and time.monotonic() < deadline:
            shards = _children(proc.pid)
            time.sleep(0.002)
        assert len(shards) == 2, "no batch with two shard processes was seen"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 60
        while any(_alive(p) for p in shards) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not any(_alive(p) for p in shards), "shard processes outlived their driver"
        staging = Paths(data).state / "stream" / "staging" / "1"
        assert not list(staging.glob("carry-*.arrow")), "a shard finished its pipeline after the driver died"
    finally:
        if proc.poll() is None:
            proc.kill()
