"""Stream job throughput vs a bare kafka-python consumer on the same topic, measured in one run.

Fills a fresh topic namespace with synthetic sessions (foot L/R 200 Hz, pelvis and EMG 100 Hz, 1 s
blocks), then times (1) a bare consumer reading every input message, (2) ``gluteflow stream`` processing
them (all batches, including Parquet writes and the strides topic). Prints runner-seconds of sensor data
per second, MB/s, the ratio to the bare consumer (target >= 0.5) and peak memory (target < 1.5 GB).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

from infra import broker, topics
from infra.kafka_io import end_offsets, make_consumer, read_partition
from infra.settings import ENV_BOOTSTRAP, Paths

# ~100 MB of input: more than one batch at the default 64 MiB cap, so the figure is a steady state
# (per-batch fixed costs, ~1 s of planning and pipeline construction, amortised as in a real backlog)
N_RUNNERS = int(os.environ.get("STREAM_BENCH_RUNNERS", "10"))
DURATION_S = int(os.environ.get("STREAM_BENCH_SECONDS", "600"))


def _tree_pss_bytes(pid: int) -> int:
    """Proportional set size of ``pid`` and its descendants (shared pages split between sharers, so
    forked shard processes are not double counted the way summed RSS would be)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


class PeakMemory:
    """Samples the PSS of this process tree every 0.25 s in a thread (reading smaps_rollup more often stole
    measurable CPU from the job); ``peak`` in bytes."""

    def __init__(self, exclude: set[int]):
        self.exclude, self.peak, self._stop = exclude, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.25):
            pss = _tree_pss_bytes(me) - sum(_tree_pss_bytes(p) for p in self.exclude)
            self.peak = max(self.peak, pss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


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
    info = broker.start(Paths(tmp / "broker")) if own else None
    bootstrap = info.bootstrap if info else os.environ[ENV_BOOTSTRAP]
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
        opts = StreamOptions(bootstrap, paths, workers=int(os.environ.get("STREAM_BENCH_WORKERS", "0")))
        workers = opts.n_workers
        with PeakMemory(exclude={info.pid} if info else set()) as mem:  # the broker is not the job
            results = run(opts, until_idle_s=0.0, log=lambda _: None)
        job_s = time.perf_counter() - t
        pipeline_s = sum(r.seconds for r in results)
        strides = sum(r.counters.get("strides_out", 0) for r in results)
        msgs = sum(r.messages for r in results)
        runner_s = N_RUNNERS * DURATION_S
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
        print(
            f"peak memory of the job (PSS of the driver and its {workers} shard processes, sampled every 0.25 s):"
            f" {mem.peak / 1024**3:.2f} GB (target < 1.5 GB)"
        )
    finally:
        if own:
            broker.stop(Paths(tmp / "broker"))


if __name__ == "__main__":
    main()
