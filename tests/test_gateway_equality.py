"""The fleet through the front door: simulate -> gateway -> Kafka (-> stream) against simulate -> Kafka
(-> stream), with the real CLI commands and the stream job as a black box.

What the gateway controls is what lands in Kafka: with one event per request (``--via-batch 1``) every topic
holds the same messages, byte for byte, in the same order per partition as the direct producer's; with the
default batching (one request per device every 64 events) each device's messages keep their order and only
the interleaving of a runner's devices changes.

Then the stream job, on both topics: every lake table equal, every column. With batching the interleaving
of a runner's devices (and every record time) differs from the direct producer's; the stream job's
strides depend on the data alone, not on how it arrived.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pytest

from gateway.server import gateway_process
from infra import topics
from infra.kafka_io import end_offsets, make_consumer, read_partition
from infra.settings import ENV_BOOTSTRAP, ENV_DATA_DIR, Paths
from pipelines.lake import read_table
from schemas.codec import decode

REPO = Path(__file__).resolve().parents[1]
SIMULATE = ["simulate", "--runners", "3", "--days", "2", "--start", "2026-11-02", "--seed", "11"]
SIMULATE += ["--duration-scale", "0.05", "--no-progress"]
TOPIC_KEYS = ("sensor_blocks", "watch_records", "sessions", "runner_profiles", "dead_letters")
#: lake tables compared whole (dead letters differ in stage and source offsets: compared by reason and event)
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


def _env(bootstrap: str, data: Path) -> dict[str, str]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    return {**os.environ, ENV_BOOTSTRAP: bootstrap, ENV_DATA_DIR: str(data), topics.ENV_TOPIC_PREFIX: prefix}


def _simulate(env: dict[str, str], data: Path, via_batch: int | None) -> None:
    _cli(env, "topics", "apply")
    if via_batch is None:
        out = _cli(env, *SIMULATE)
    else:
        # the whole simulated fleet is one client here: the per-device limit is for real devices
        with gateway_process(env, data / "gateway.log", ["--rate-limit", "1000/second"]) as gw:
            out = _cli(env, *SIMULATE, "--via", gw.url, "--via-batch", str(via_batch))
    assert "simulated 3 runners x 2 days" in out


def _topics(env: dict[str, str]) -> dict[tuple[str, int], list[bytes]]:
    """Every message of every topic of this namespace, per (topic, partition), in offset order."""
    bootstrap = env[ENV_BOOTSTRAP]
    old = os.environ.get(topics.ENV_TOPIC_PREFIX)
    os.environ[topics.ENV_TOPIC_PREFIX] = env[topics.ENV_TOPIC_PREFIX]
    consumer = make_consumer(bootstrap)
    try:
        out = {}
        for key in TOPIC_KEYS:
            name = topics.topic(key)
            for part, end in end_offsets(bootstrap, name, consumer).items():
                out[(key, part)] = [v for _, _, v in read_partition(consumer, name, part, 0, end)]
        return out
    finally:
        consumer.close()
        if old is None:
            os.environ.pop(topics.ENV_TOPIC_PREFIX, None)
        else:
            os.environ[topics.ENV_TOPIC_PREFIX] = old


def _per_device(messages: dict[tuple[str, int], list[bytes]]) -> dict[tuple[str, int, str], list[bytes]]:
    out: dict[tuple[str, int, str], list[bytes]] = defaultdict(list)
    for (key, part), values in messages.items():
        for v in values:
            out[(key, part, decode(v).device_id)].append(v)
    return dict(out)


def _sorted(table: pa.Table) -> pa.Table:
    keys = [
        (n, "ascending") for n in table.column_names if not pa.types.is_nested(table.schema.field(n).type)
    ]
    return table.sort_by(keys)


def _stream(env: dict[str, str], data: Path) -> tuple[dict[str, pa.Table], Counter]:
    _cli(env, "stream", "--until-idle", "0", "--drain")
    paths = Paths(data)
    tables = {name: _sorted(read_table(paths.table(name))) for name in TABLES}
    letters = read_table(paths.table("dead_letters"))
    keys = ["reason", "runner_id", "device_id", "session_id", "seq"]
    rejected = (
        Counter(tuple(r.values()) for r in letters.select(keys).to_pylist())
        if letters.num_rows
        else Counter()
    )
    return tables, rejected


@pytest.mark.timeout(900)
def test_the_gateway_publishes_what_the_direct_producer_publishes(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    runs = {}
    for way, batch in (("direct", None), ("exact", 1), ("batched", 64)):
        env = _env(kafka_bootstrap, tmp_path / way)
        _simulate(env, tmp_path / way, batch)
        runs[way] = _topics(env)
    direct = runs["direct"]
    assert sum(len(v) for v in direct.values()) > 1000
    assert runs["exact"] == direct  # every topic and partition: same bytes, same order
    assert runs["batched"].keys() == direct.keys()
    assert _per_device(runs["batched"]) == _per_device(direct)  # each device's messages in order
    for key, values in direct.items():
        assert Counter(runs["batched"][key]) == Counter(values), key


@pytest.mark.timeout(900)
def test_simulate_through_the_gateway_then_stream_gives_the_same_tables(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    results = {}
    for way, batch in (("direct", None), ("gateway", 64)):
        env = _env(kafka_bootstrap, tmp_path / way)
        _simulate(env, tmp_path / way, batch)
        results[way] = _stream(env, tmp_path / way)
    (direct, direct_rejected), (gateway, gateway_rejected) = results["direct"], results["gateway"]
    assert direct["strides"].num_rows > 500
    for name in TABLES:
        a, b = direct[name], gateway[name]
        assert b.schema == a.schema, name
        assert b.equals(a), f"{name} differs through the gateway"
    assert gateway_rejected == direct_rejected  # the same inputs rejected for the same reasons
