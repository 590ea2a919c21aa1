"""The stream job unbounded on a Beam streaming runner (``gluteflow stream --runner PrismRunner|...``).

The same composite as the local micro-batch executor (:class:`~pipelines.stream.transforms.SessionStrides`),
read without a stop offset (the project's splittable DoFn defers its remainder when a poll is empty, or
Beam's cross-language ``ReadFromKafka`` with ``--kafka-reader java``), its state and timers kept by the
runner, its tables written by :class:`~pipelines.io.parquet_sink.WriteWindowedTables` (fixed windows
of Kafka record time, one atomic file per window and pane) and its strides and dead letters sent to
their topics. Reading starts at the micro-batch checkpoint's offsets when there is one, else at the
beginning of every partition. Commands for Flink clusters and Dataflow: docs/stream.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from infra import topics
from infra.kafka_io import make_consumer, partitions_of
from infra.settings import Paths
from pipelines.io.kafka_sink import PublishToTopics
from pipelines.io.kafka_source import PartitionSpec, ReadKafkaPartitions, read_java
from pipelines.io.parquet_sink import WriteWindowedTables
from pipelines.stream.sessionize import StreamParams
from pipelines.stream.transforms import OUTPUT_TABLES, SessionStrides, profile_row
from schemas.tables import DEAD_LETTERS, RUNNERS, STRIDES

INPUT_TOPIC_KEYS = ("sensor_blocks", "watch_records", "sessions", "runner_profiles", "dead_letters")


@dataclass
class StreamingJob:
    bootstrap: str
    paths: Paths
    params: StreamParams = StreamParams()
    reader: str = "python"  # python | java
    window_s: float = 10.0


def start_specs(bootstrap: str, offsets: dict) -> list[PartitionSpec]:
    """One unbounded spec per input partition, from ``offsets`` (``{topic: {partition: offset}}``, e.g.
    the micro-batch checkpoint's) or the partition's beginning."""
    from kafka import TopicPartition

    consumer = make_consumer(bootstrap)
    try:
        specs = []
        for name in (topics.topic(k) for k in INPUT_TOPIC_KEYS):
            parts = [TopicPartition(name, p) for p in partitions_of(consumer, name)]
            begins = consumer.beginning_offsets(parts)
            for tp in parts:
                start = max(int(offsets.get(name, {}).get(str(tp.partition), 0)), begins[tp])
                specs.append(PartitionSpec(bootstrap, name, tp.partition, start, None))
        return specs
    finally:
        consumer.close()


def build(p: beam.Pipeline, job: StreamingJob, specs: Sequence[PartitionSpec]) -> None:
    """Kafka -> SessionStrides -> windowed lake files + strides and dead-letter topics."""
    if job.reader == "java":  # Beam's KafkaIO through the project's expansion service (make kafka-expansion)
        from infra.runners import kafka_expansion_service

        topics_read = sorted({s.topic for s in specs})
        msgs = read_java(p, job.bootstrap, topics_read, expansion_service=kafka_expansion_service())
    else:
        msgs = (
            p
            | "PartitionRanges" >> beam.Create(list(specs))
            | "ReadKafka" >> ReadKafkaPartitions(as_lists=True)
        )
    out = msgs | "SessionStrides" >> SessionStrides(
        job.params, dead_letters_dir=job.paths.table("dead_letters")
    )
    tables = {
        name: (job.paths.table(name), schema, ("date",), sort_by)
        for name, (schema, sort_by) in OUTPUT_TABLES.items()
    }
    tables["runners"] = (job.paths.table("runners"), RUNNERS, (), ("runner_id",))
    pcolls = {name: out[name] for name in OUTPUT_TABLES}
    pcolls["runners"] = out["profiles"] | "RunnerRows" >> beam.Map(lambda prof: [profile_row(prof)])
    _ = pcolls | "WriteWindowedTables" >> WriteWindowedTables(tables, job.window_s)
    _ = out["strides"] | "PublishStrides" >> PublishToTopics(job.bootstrap, "strides", STRIDES)
    _ = out["dead_letters"] | "PublishDeadLetters" >> PublishToTopics(
        job.bootstrap, "dead_letters", DEAD_LETTERS
    )


def runner_options(pipeline_args: Sequence[str]) -> PipelineOptions:
    """The user's Beam options, ``--streaming`` added, and for ``PrismRunner`` without
    ``--prism_location`` the project's binary (``make prism``) in LOOPBACK mode."""
    args = list(pipeline_args)
    runner = PipelineOptions(args).view_as(StandardOptions).runner or ""
    if runner.endswith("PrismRunner") and not any(a.startswith("--prism_location") for a in args):
        from infra.runners import prism_args

        args = [*prism_args(), *args]
    return PipelineOptions([*args, "--streaming"])


def run_streaming(
    job: StreamingJob,
    pipeline_args: Sequence[str],
    offsets: dict | None = None,
    run_for_s: float | None = None,
    until: Callable[[], bool] | None = None,
    poll_s: float = 1.0,
    quiet_stop: bool = False,
):
    """Submit the unbounded job and wait: forever, ``run_for_s`` seconds, or until ``until()`` is true;
    then cancel it (``quiet_stop``: without the interrupted bundles' tracebacks, for a command that
    exits next). Returns the pipeline result (its state: CANCELLED after a stop)."""
    topics.apply(job.bootstrap)
    p = beam.Pipeline(options=runner_options(pipeline_args))
    build(p, job, start_specs(job.bootstrap, offsets or {}))
    result = p.run()
    t0 = time.monotonic()
    try:
        while True:
            state = str(result.state)
            if state in ("DONE", "FAILED", "CANCELLED", "PipelineState.DONE", "PipelineState.FAILED"):
                break
            if run_for_s is not None and time.monotonic() - t0 >= run_for_s:
                break
            if until is not None and until():
                break
            time.sleep(poll_s)
    finally:
        if str(result.state).split(".")[-1] not in ("DONE", "FAILED", "CANCELLED"):
            _quiet_cancel(result) if quiet_stop else result.cancel()
    return result


def _quiet_cancel(result) -> None:
    """Cancel, for a process that ends right after. The bundles a cancel interrupts fail on purpose, in
    the runner's and the SDK harness's threads, during and after ``cancel()``: each prints a traceback to
    stderr and logs an error. From here on this process shows neither (it only exits)."""
    import logging
    import os
    import sys

    logging.disable(logging.CRITICAL)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
    result.cancel()
