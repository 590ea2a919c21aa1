"""Stream job throughput vs a bare kafka-python consumer on the same topic, measured in one run.

Fills a fresh topic namespace with synthetic sessions (foot L/R 200 Hz, pelvis and EMG 100 Hz, 1 s
blocks), then times (1) a bare consumer reading every input message, (2) ``gluteflow stream`` processing
them (all batches, including Parquet writes and the strides topic). Prints runner-seconds of sensor data
per second, MB/s, the ratio to the bare consumer (target >= 0.5) and peak RSS (target < 1.5 GB).
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

from infra import broker, topics
from infra.kafka_io import end_offsets, make_consumer, read_partition
from infra.settings import ENV_BOOTSTRAP, Paths

N_RUNNERS = int(os.environ.get("STREAM_BENCH_RUNNERS", "6"))
DURATION_S = int(os.environ.get("STREAM_BENCH_SECONDS", "300"))


def _bare_read(bootstrap: str, names: list[str]) -> tuple[int, int]:
    consumer = make_consumer(bootstrap)
    n = nbytes = 0
    try:
        for name in names:
            for p, end in end_offsets(bootstrap, name, consumer).items():
                for _, _, value in read_partition(consumer, name, p, 0, end):
                    n += 1
                    nbytes += len(value)
    finally:
        consumer.close()
    return n, nbytes


def main() -> None:
    from jobs.stream_driver import INPUT_TOPIC_KEYS, StreamOptions, run
    from pipelines.stream.synthetic import make_session

    tmp = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    own = not os.environ.get(ENV_BOOTSTRAP)
    bootstrap = broker.start(Paths(tmp / "broker")).bootstrap if own else os.environ[ENV_BOOTSTRAP]
    os.environ[topics.ENV_TOPIC_PREFIX] = f"bench{uuid.uuid4().hex[:6]}."
    try:
        topics.apply(bootstrap)
        from infra.kafka_io import make_producer
        from schemas.codec import encode

        producer = make_producer(bootstrap)
        t0 = 1_767_225_600_000_000
        for r in range(N_RUNNERS):
            _, blocks, markers = make_session(f"r{r:03d}", f"r{r:03d}-s1", t0, DURATION_S, seed=r)
            for e in [markers[0], *blocks, markers[1]]:
                name = topics.topic("sensor_blocks" if e.KIND == "sensor_block" else "sessions")
                producer.send(name, key=e.key, value=encode(e))
        producer.flush()
        producer.close()
        names = [topics.topic(k) for k in INPUT_TOPIC_KEYS]

        t = time.perf_counter()
        n_bare, bytes_bare = _bare_read(bootstrap, names)
        bare_s = time.perf_counter() - t

        paths = Paths(tmp / "data").ensure()
        t = time.perf_counter()
        workers = int(os.environ.get("STREAM_BENCH_WORKERS", str(StreamOptions.workers)))
        opts = StreamOptions(bootstrap, paths, workers=workers)
        results = run(opts, until_idle_s=0.0, log=lambda _: None)
        job_s = time.perf_counter() - t
        pipeline_s = sum(r.seconds for r in results)
        strides = sum(r.counters.get("strides_out", 0) for r in results)
        msgs = sum(r.messages for r in results)
        runner_s = N_RUNNERS * DURATION_S
        rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(f"input: {N_RUNNERS} runners x {DURATION_S} s, {n_bare} messages, {bytes_bare / 1e6:.1f} MB")
        print(
            f"bare consumer : {bare_s:6.2f} s  {bytes_bare / 1e6 / bare_s:7.1f} MB/s  {runner_s / bare_s:8.0f} runner-s/s"
        )
        print(
            f"stream job    : {job_s:6.2f} s  {bytes_bare / 1e6 / job_s:7.1f} MB/s  {runner_s / job_s:8.0f} runner-s/s"
            f"  ({len(results)} batches, {msgs} messages, {strides} strides)"
        )
        print(
            f"  of which Beam pipelines {pipeline_s:.2f} s (workers={workers}); planning, checkpoint, publish"
            f" (lake moves, strides topic) {job_s - pipeline_s:.2f} s"
        )
        print(f"ratio stream/bare: {bare_s / job_s:.2f} (target >= 0.5)")
        print(f"peak RSS (this process, incl. bare read): {rss_gb:.2f} GB (target < 1.5 GB)")
    finally:
        if own:
            broker.stop(Paths(tmp / "broker"))


if __name__ == "__main__":
    main()
