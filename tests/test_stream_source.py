"""The Kafka splittable DoFn and exact end offsets, on the real embedded broker."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to
from kafka import TopicPartition

from infra import topics
from infra.kafka_io import end_offsets, make_consumer, make_producer
from pipelines.io.kafka_source import PartitionSpec, ReadKafkaPartitions


def _fill(bootstrap: str, name: str, n: int) -> None:
    producer = make_producer(bootstrap, linger_ms=50)
    for i in range(n):
        producer.send(name, key=f"runner-{i % 7}".encode(), value=f"v{i}".encode() * 10)
    producer.flush()
    producer.close()


def test_end_offsets_use_high_watermark(kafka: str) -> None:
    name = topics.topic("watch_records")
    _fill(kafka, name, 500)
    ends = end_offsets(kafka, name)
    assert sum(ends.values()) == 500  # exact, although batches hold many records
    consumer = make_consumer(kafka)
    try:
        latest = consumer.end_offsets([TopicPartition(name, p) for p in ends])
    finally:
        consumer.close()
    # ListOffsets(LATEST) may under-report on Tansu (base offset of the last batch + 1); never over-report
    assert all(latest[TopicPartition(name, p)] <= ends[p] for p in ends)


def test_sdf_reads_every_offset_once_with_splits(kafka: str) -> None:
    name = topics.topic("watch_records")
    _fill(kafka, name, 600)
    ends = end_offsets(kafka, name)
    specs = [PartitionSpec(kafka, name, p, 0, ends[p], split_offsets=17) for p in ends]
    expected = [(p, o) for p in ends for o in range(ends[p])]
    with beam.Pipeline(runner=FnApiRunner()) as p:
        got = (
            p
            | "Specs" >> beam.Create(specs)
            | "Read" >> ReadKafkaPartitions()
            | "Coords" >> beam.Map(lambda m: (m.partition, m.offset))
        )
        assert_that(got, equal_to(expected))


def test_sdf_reads_a_middle_range(kafka: str) -> None:
    name = topics.topic("sessions")
    _fill(kafka, name, 120)
    ends = end_offsets(kafka, name)
    part = max(ends, key=ends.get)
    lo, hi = 3, ends[part] - 2
    with beam.Pipeline(runner=FnApiRunner()) as p:
        got = (
            p
            | beam.Create([PartitionSpec(kafka, name, part, lo, hi)])
            | ReadKafkaPartitions()
            | beam.Map(lambda m: m.offset)
        )
        assert_that(got, equal_to(list(range(lo, hi))))


def test_key_caching_partitioner_places_keys_like_the_default(kafka: str) -> None:
    """The producer's memoised partitioner sends every key to the partition kafka-python's default
    (murmur2) partitioner picks, so runner-keyed topics stay co-partitioned with other producers."""
    from kafka.partitioner.default import DefaultPartitioner

    from infra.kafka_io import KeyCachingPartitioner

    name = topics.topic("sensor_blocks")
    keys = [f"runner-{i}".encode() for i in range(200)]
    producer = make_producer(kafka)
    default = make_producer(kafka, partitioner=DefaultPartitioner())
    try:
        assert isinstance(producer.config["partitioner"], KeyCachingPartitioner)
        n_parts = len(producer.partitions_for(name))
        assert n_parts > 1 and len(default.partitions_for(name)) == n_parts
        cached = [producer.send(name, key=k, value=b"x").get(timeout=10).partition for k in keys * 2]
        plain = [default.send(name, key=k, value=b"x").get(timeout=10).partition for k in keys]
    finally:
        producer.close()
        default.close()
    assert cached == plain * 2
    assert len(set(plain)) == n_parts  # the keys cover every partition: a constant answer would fail
