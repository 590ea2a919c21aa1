"""Beam's streaming runners reading Kafka: a bare kafka-python consumer vs the same read-only Beam pipeline
(the project's Kafka SDF, one list per poll, counted) on the FnApiRunner, Prism and Flink, measured in one
run on the same topic. Runners that are not installed (``make prism``, ``make flink``) are reported as such.

Every reader gets the end offsets computed before its timing starts; a runner's time includes starting the
job (Prism's job service, Flink's embedded cluster), printed separately as the time of an empty job."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

from infra import topics
from infra.broker import running_broker
from infra.kafka_io import end_offsets, make_consumer, make_producer, read_partition
from infra.settings import Paths

N_MESSAGES = 40_000
MESSAGE_BYTES = 2_000


def _fill(bootstrap: str, name: str) -> None:
    producer = make_producer(bootstrap)
    payload = os.urandom(MESSAGE_BYTES)
    for i in range(N_MESSAGES):
        producer.send(name, key=f"r{i % 97:03d}".encode(), value=payload)
    producer.flush()
    producer.close()


def _bare(bootstrap: str, name: str, ends: dict[int, int]) -> int:
    consumer = make_consumer(bootstrap)
    try:
        return sum(1 for part, end in ends.items() for _ in read_partition(consumer, name, part, 0, end))
    finally:
        consumer.close()


def _beam(options, bootstrap: str, name: str, ends: dict[int, int]) -> int:
    """Records read by the read-only pipeline (from the SDF's counter)."""
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from pipelines.io.kafka_source import PartitionSpec, ReadKafkaPartitions

    specs = [PartitionSpec(bootstrap, name, part, 0, end) for part, end in ends.items()]
    # the FnApiRunner by object: Beam 2.77's default DirectRunner first tries Prism (downloading it, which
    # fails offline) and its job server, cached for the process, then broke the Prism run that followed
    runner = FnApiRunner() if options.view_as(StandardOptions).runner is None else None
    pipeline = beam.Pipeline(runner=runner, options=options)
    _ = pipeline | beam.Create(specs) | ReadKafkaPartitions(as_lists=True) | beam.Map(len)
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name("records_read"))["counters"]
    return sum(int(c.committed or c.attempted or 0) for c in counters)


def _runner_options() -> dict[str, object]:
    """name -> PipelineOptions, or the reason the runner is not installed."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from infra import runners

    out: dict[str, object] = {
        "fnapi": PipelineOptions(["--direct_num_workers=1", "--direct_running_mode=in_memory"])
    }
    for name, make in (("prism", runners.prism_options), ("flink", runners.flink_options)):
        try:
            out[name] = make(streaming=False)
        except runners.RunnerUnavailable as exc:
            out[name] = str(exc)
    return out


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="runners-bench-"))
    os.environ[topics.ENV_TOPIC_PREFIX] = f"bench{uuid.uuid4().hex[:6]}."
    with running_broker(Paths(tmp / "broker")) as info:
        bootstrap = info.bootstrap
        topics.apply(bootstrap)
        name = topics.topic("sensor_blocks")
        _fill(bootstrap, name)
        ends = end_offsets(bootstrap, name)
        t = time.perf_counter()
        n_bare = _bare(bootstrap, name, ends)
        bare_s = time.perf_counter() - t
        mb = n_bare * MESSAGE_BYTES / 1e6
        print(f"input: {n_bare} messages x {MESSAGE_BYTES} B = {mb:.0f} MB in {len(ends)} partitions")
        print(f"bare consumer      : {bare_s:6.2f} s  {n_bare / bare_s:9.0f} msg/s  {mb / bare_s:6.1f} MB/s")
        for runner, options in _runner_options().items():
            if isinstance(options, str):
                print(f"{runner:18s} : not installed ({options})")
                continue
            t = time.perf_counter()
            _beam(options, bootstrap, name, {part: 0 for part in ends})  # an empty job: startup cost
            empty_s = time.perf_counter() - t
            t = time.perf_counter()
            n = _beam(options, bootstrap, name, ends)
            s = time.perf_counter() - t
            steady_s = max(s - empty_s, 1e-9)
            print(
                f"{runner + ' read-only':18s} : {s:6.2f} s  {n / s:9.0f} msg/s  {mb / s:6.1f} MB/s"
                f"  ratio {bare_s / s:4.2f}  (empty job {empty_s:5.2f} s; without it: ratio"
                f" {bare_s / steady_s:4.2f}; records {n})"
            )


if __name__ == "__main__":
    main()
