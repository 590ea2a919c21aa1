"""Apache Kafka itself (KRaft, single node, from the jars `make kafka` fetches): the project's producer, the
stream job's source and the simulate -> stream chain against it, and what Tansu, the embedded default,
does differently (infra/README.md). Skips, saying why, without Java or the jars.

The whole suite runs against Apache Kafka with ``GLUTEFLOW_TEST_BROKER=apache-kafka``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import pandas as pd
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from infra import topics
from infra.kafka_io import end_offsets, make_consumer, make_producer
from infra.settings import ENV_BOOTSTRAP, Paths
from pipelines.io.kafka_source import PartitionSpec, ReadKafkaPartitions
from pipelines.lake import read_table
from schemas.tables import STRIDES


@pytest.fixture
def apache(apache_kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Apache Kafka with this test's own topics applied."""
    monkeypatch.setenv(topics.ENV_TOPIC_PREFIX, f"{os.urandom(5).hex()}.")
    topics.apply(apache_kafka_bootstrap)
    return apache_kafka_bootstrap


def _fill(bootstrap: str, name: str, n: int) -> None:
    producer = make_producer(bootstrap, linger_ms=50)
    for i in range(n):
        producer.send(name, key=f"runner-{i % 7}".encode(), value=f"v{i}".encode() * 10)
    producer.flush()
    producer.close()


def test_producer_and_source_read_every_offset(apache: str) -> None:
    name = topics.topic("watch_records")
    _fill(apache, name, 600)
    ends = end_offsets(apache, name)
    assert sum(ends.values()) == 600 and len(ends) > 1
    specs = [PartitionSpec(apache, name, p, 0, ends[p], split_offsets=17) for p in ends]
    with beam.Pipeline(runner=FnApiRunner()) as p:
        got = p | beam.Create(specs) | ReadKafkaPartitions() | beam.Map(lambda m: (m.partition, m.offset))
        assert_that(got, equal_to([(part, o) for part in ends for o in range(ends[part])]))


def _list_offsets_latest(bootstrap: str, name: str, parts: list[int]) -> dict[int, int]:
    consumer = make_consumer(bootstrap)
    try:
        latest = consumer.end_offsets([TopicPartition(name, p) for p in parts])
    finally:
        consumer.close()
    return {tp.partition: o for tp, o in latest.items()}


def test_list_offsets_latest_is_the_high_watermark(apache: str) -> None:
    """Apache Kafka answers ListOffsets(LATEST) with the high watermark; Tansu answers the last batch's
    base offset + 1 (tests/test_stream_source.py), which is why the project reads fetch high watermarks."""
    name = topics.topic("watch_records")
    _fill(apache, name, 500)
    ends = end_offsets(apache, name)
    assert _list_offsets_latest(apache, name, list(ends)) == ends


def test_offset_commit_keeps_its_metadata(apache: str) -> None:
    """A group commit's metadata string comes back from OffsetFetch (Tansu returns it empty)."""
    name = topics.topic("sessions")
    _fill(apache, name, 20)
    tp = TopicPartition(name, max(end_offsets(apache, name).items(), key=lambda kv: kv[1])[0])
    group = f"g-{os.urandom(4).hex()}"
    consumer = make_consumer(apache, group_id=group)
    try:
        consumer.commit({tp: OffsetAndMetadata(3, "batch=7;source=test", -1)})
        committed = consumer.committed(tp, metadata=True)
    finally:
        consumer.close()
    assert (committed.offset, committed.metadata) == (3, "batch=7;source=test")


def _chain(bootstrap: str, data: Path) -> pd.DataFrame:
    """`gluteflow simulate` then `gluteflow stream` (one batch, until idle) on ``bootstrap``."""
    topics.apply(bootstrap)  # this test's topic prefix, on either broker
    env = {**os.environ, ENV_BOOTSTRAP: bootstrap}
    cli = [sys.executable, "-m", "jobs.cli", "--data-dir", str(data)]
    for args in (
        [
            "simulate",
            "--runners",
            "2",
            "--days",
            "1",
            "--seed",
            "11",
            "--duration-scale",
            "0.03",
            "--no-progress",
        ],
        ["stream", "--until-idle", "2", "--workers", "1"],
    ):
        proc = subprocess.run(cli + args, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    strides = read_table(Paths(data).table("strides"), STRIDES).to_pandas()
    return strides.sort_values("stride_id", ignore_index=True)


@pytest.mark.slow
def test_simulate_then_stream_equals_the_embedded_broker(apache: str, kafka: str, tmp_path: Path) -> None:
    """The same simulated fleet through Apache Kafka and through Tansu gives the same strides table."""
    if kafka == apache:
        pytest.skip(
            "the suite's broker is Apache Kafka itself (GLUTEFLOW_TEST_BROKER): no Tansu to compare with"
        )
    on_apache = _chain(apache, tmp_path / "apache")
    on_tansu = _chain(kafka, tmp_path / "tansu")
    assert len(on_apache) > 100
    pd.testing.assert_frame_equal(on_apache, on_tansu)
