"""Micro-batch driver of the stride-feature stream job (``gluteflow stream``).

Why micro-batches: on the local FnApiRunner an unbounded read never fires the stages after a
GroupByKey, so each batch is one **bounded** Beam pipeline over Kafka offset ranges (the same
transforms run unbounded on a streaming runner, see pipelines/io/kafka_source.py).

Crash-safe batch protocol (``<data>/state/stream/``)
---------------------------------------------------
1. Load ``checkpoint.json``. If its batch is not ``published`` yet, finish publishing it (step 5) first.
2. Batch ``N = last + 1``: ranges ``[committed offset, end)`` per topic-partition (end = fetch high
   watermark), capped to ``--max-batch-bytes`` using the mean message size seen so far.
3. Wipe ``staging/N/`` and run the bounded pipeline: it writes every output table under
   ``staging/N/<table>/date=.../part-<N:06d>.parquet`` and the new carry-over state
   ``staging/N/carry.arrow`` (atomic files).
4. **Commit point**: atomically replace ``checkpoint.json`` with the new offsets, batch number, state
   file, the staged file list and ``published: false``.
5. Publish (idempotent): move each staged file onto its lake path (skip when already moved), send the
   batch's strides to the strides topic and its own dead letters to the dead-letter topic
   (at-least-once: ``stride_id`` / ``dead_letter_id`` are the idempotency keys), commit the offsets to
   Kafka's group ``gluteflow-stream`` (informational: the checkpoint is the truth; Tansu keeps no
   commit metadata), then mark the checkpoint ``published`` and delete older staging dirs.

A crash before 4 loses only staging (the batch is recomputed from the old checkpoint); a crash after
4 is completed by step 1. Lake file names depend only on the batch number, so nothing is duplicated.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from kafka import TopicPartition

from infra import topics
from infra.kafka_io import make_consumer, make_producer
from infra.settings import Paths
from pipelines.io.kafka_source import PartitionSpec
from pipelines.io.parquet_sink import WriteTables
from pipelines.lake import read_table
from pipelines.stream.sessionize import StreamParams
from pipelines.stream.transforms import StrideFeatureBatch
from schemas.codec import encode_record
from schemas.tables import DEAD_LETTERS, RUNNERS, SESSIONS, STRIDES, WATCH_RECORDS

INPUT_TOPIC_KEYS = ("sensor_blocks", "watch_records", "sessions", "runner_profiles", "dead_letters")
DEFAULT_MAX_BATCH_BYTES = 64 * 1024 * 1024
DEFAULT_AVG_MESSAGE_BYTES = 20_000
CONSUMER_GROUP = "gluteflow-stream"
OUTPUT_TABLES = {
    "strides": (STRIDES, ("runner_id", "ic_time")),
    "watch_records": (WATCH_RECORDS, ("runner_id", "timestamp")),
    "sessions": (SESSIONS, ("runner_id", "timestamp")),
    "dead_letters": (DEAD_LETTERS, ("dead_letter_id",)),
}


@dataclass
class StreamOptions:
    bootstrap: str
    paths: Paths
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    params: StreamParams = field(default_factory=StreamParams)
    kafka_reader: str = "python"  # python | java
    # 1 = FnApiRunner in_memory (measured faster and ~0.4 GB leaner here than multi_threading: the work
    # is GIL-bound Python/numpy on small arrays); >1 = multi_threading with that many workers
    workers: int = 1
    split_offsets: int = 0


@dataclass
class BatchResult:
    batch: int
    messages: int
    bytes: int
    seconds: float
    counters: dict[str, int]
    staged: list[str]

    @property
    def reconciles(self) -> bool:
        c = self.counters
        accepted = sum(
            c.get(k, 0)
            for k in (
                "blocks_accepted",
                "watch_records_accepted",
                "session_markers_accepted",
                "profiles_accepted",
                "upstream_dead_letters_archived",
                "own_dead_letters_skipped",
            )
        )
        dead = sum(v for k, v in c.items() if k.startswith("dead_letters_"))
        return c.get("messages_in", 0) == accepted + c.get("duplicates_dropped", 0) + dead


def stream_dir(paths: Paths) -> Path:
    return paths.state / "stream"


def checkpoint_path(paths: Paths) -> Path:
    return stream_dir(paths) / "checkpoint.json"


def load_checkpoint(paths: Paths) -> dict:
    path = checkpoint_path(paths)
    if not path.exists():
        return {"version": 1, "batch": 0, "offsets": {}, "partition_max": {}, "published": True, "staged": []}
    return json.loads(path.read_text())


def write_checkpoint(paths: Paths, ckpt: dict) -> None:
    """Atomic replace (tmp + fsync + rename + dir fsync): the commit point of a batch."""
    path = checkpoint_path(paths)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as f:
        json.dump(ckpt, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _arrow_rows_for_topic(table: pa.Table) -> list[dict]:
    """Lake rows -> Avro records (timestamps as int microseconds, date as days)."""
    cols = {}
    for name in table.column_names:
        col = table[name]
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        elif pa.types.is_date32(col.type):
            col = col.cast(pa.int32())
        cols[name] = col
    return pa.table(cols).to_pylist()


def finish_publish(opts: StreamOptions, ckpt: dict, log: Callable[[str], None] = print) -> None:
    """Step 5 of the protocol; safe to repeat."""
    if ckpt.get("published", True):
        return
    paths = opts.paths
    batch = ckpt["batch"]
    staging = stream_dir(paths) / "staging" / str(batch)
    moved: list[Path] = []
    for rel in ckpt["staged"]:
        src, dst = staging / rel, paths.lake / rel
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        moved.append(dst)
    # strides and our own dead letters to Kafka (at-least-once; ids are idempotency keys)
    producer = make_producer(opts.bootstrap, client_id="gluteflow-stream")
    try:
        for dst in moved:
            rel = dst.relative_to(paths.lake).parts
            if rel[0] == "strides" and dst.exists():
                table = pq.read_table(dst)
                for rec in _arrow_rows_for_topic(table):
                    rec["date"] = (rec["ic_time"] // 86_400_000_000) if rec.get("ic_time") is not None else 0
                    producer.send(
                        topics.topic("strides"),
                        key=rec["runner_id"].encode(),
                        value=encode_record("stride", rec),
                    )
            if rel[0] == "dead_letters" and dst.exists():
                table = pq.read_table(dst)
                for rec in _arrow_rows_for_topic(table):
                    if rec["stage"] != "stream":
                        continue
                    letter = {
                        "reason": rec["reason"],
                        "detail": rec["detail"],
                        "stage": rec["stage"],
                        "original": rec["original"],
                        "dead_lettered_at_us": rec["dead_lettered_at"],
                        **{
                            k: rec[k]
                            for k in (
                                "runner_id",
                                "device_id",
                                "session_id",
                                "seq",
                                "source_topic",
                                "source_partition",
                                "source_offset",
                                "source_file",
                            )
                        },
                    }
                    producer.send(
                        topics.topic("dead_letters"),
                        key=(rec["runner_id"] or rec["reason"]).encode(),
                        value=encode_record("dead_letter", letter),
                    )
        producer.flush()
    finally:
        producer.close()
    _commit_kafka_offsets(opts.bootstrap, ckpt["offsets"], log)
    ckpt["published"] = True
    write_checkpoint(paths, ckpt)
    for old in (stream_dir(paths) / "staging").glob("*"):
        if old.name.isdigit() and int(old.name) < batch:
            shutil.rmtree(old, ignore_errors=True)


def _commit_kafka_offsets(bootstrap: str, offsets: dict, log: Callable[[str], None]) -> None:
    """Informational group commit (the checkpoint file is authoritative)."""
    from kafka.structs import OffsetAndMetadata

    try:
        consumer = make_consumer(bootstrap, group_id=CONSUMER_GROUP, client_id="gluteflow-stream-commit")
        try:
            consumer.commit(
                {
                    TopicPartition(t, int(p)): OffsetAndMetadata(int(o), "", -1)
                    for t, parts in offsets.items()
                    for p, o in parts.items()
                }
            )
        finally:
            consumer.close()
    except Exception as exc:  # informational only
        log(f"kafka offset commit skipped ({type(exc).__name__}: {exc})")


def _high_watermarks(
    bootstrap: str, names: list[str], timeout_s: float = 15.0
) -> tuple[dict, dict, list[int]]:
    """Begin and end (fetch high watermark) offsets of every partition of ``names`` with one consumer.

    All partitions are assigned at once, so empty partitions cost one fetch round, not a poll timeout
    each (Tansu under-reports ListOffsets(LATEST), see infra.kafka_io.end_offsets). Also returns the
    sizes of the few records the polls returned (the message-size estimate of a first batch).
    """
    from infra.kafka_io import partitions_of

    consumer = make_consumer(bootstrap, max_poll_records=64, max_partition_fetch_bytes=256 * 1024)
    try:
        parts = [TopicPartition(n, p) for n in names for p in partitions_of(consumer, n)]
        consumer.assign(parts)
        begins = consumer.beginning_offsets(parts)
        for tp in parts:
            consumer.seek(tp, begins[tp])
        ends: dict = {}
        sizes: dict[str, list[int]] = {}
        deadline = time.monotonic() + timeout_s
        while len(ends) < len(parts):
            if time.monotonic() > deadline:
                missing = [f"{tp.topic}[{tp.partition}]" for tp in parts if tp not in ends]
                raise RuntimeError(f"no high watermark for {missing}")
            for tp, records in consumer.poll(timeout_ms=100).items():
                sizes.setdefault(tp.topic, []).extend(len(r.value or b"") for r in records)
            for tp in parts:
                if tp not in ends:
                    hw = consumer.highwater(tp)
                    if hw is not None:
                        ends[tp] = hw
                        consumer.pause(tp)  # no more fetches for it
        return begins, ends, sizes
    finally:
        consumer.close()


def plan_ranges(opts: StreamOptions, ckpt: dict) -> tuple[list[PartitionSpec], dict, int]:
    """Offset ranges for the next batch (capped by bytes) -> (specs, new offsets, backlog messages)."""
    names = [topics.topic(key) for key in INPUT_TOPIC_KEYS]
    begins, ends, sizes = _high_watermarks(opts.bootstrap, names)
    backlog: dict[tuple[str, int], tuple[int, int]] = {}
    for tp, end in ends.items():
        committed = ckpt["offsets"].get(tp.topic, {})
        start = max(int(committed.get(str(tp.partition), 0)), begins[tp])
        if end > start:
            backlog[(tp.topic, tp.partition)] = (start, end)
    total = sum(e - s for s, e in backlog.values())
    if not ckpt.get("avg_bytes") and total:  # first batch: estimate from the records just seen
        est = sum(
            (e - s) * (sum(sizes[t]) / len(sizes[t]) if sizes.get(t) else DEFAULT_AVG_MESSAGE_BYTES)
            for (t, _), (s, e) in backlog.items()
        )
        ckpt = {**ckpt, "avg_bytes": max(1, int(est / total))}
    avg = ckpt.get("avg_bytes", DEFAULT_AVG_MESSAGE_BYTES)
    budget = max(1, int(opts.max_batch_bytes // max(avg, 1)))
    specs = []
    offsets = {t: dict(parts) for t, parts in ckpt["offsets"].items()}
    for (name, p), (s, e) in sorted(backlog.items()):
        n = e - s if total <= budget else max(1, int(budget * (e - s) / total))
        stop = min(e, s + n)
        specs.append(PartitionSpec(opts.bootstrap, name, p, s, stop, opts.split_offsets))
        offsets.setdefault(name, {})[str(p)] = stop
    return specs, offsets, total


def run_batch(opts: StreamOptions, ckpt: dict, specs: list[PartitionSpec], new_offsets: dict) -> BatchResult:
    """Steps 3-5 for one batch; returns its metrics."""
    paths = opts.paths
    batch = ckpt["batch"] + 1
    staging = stream_dir(paths) / "staging" / str(batch)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    prev_state = stream_dir(paths) / ckpt["state_file"] if ckpt.get("state_file") else None
    runners = read_table(paths.table("runners"), RUNNERS, partition_cols=()).to_pylist()
    runners = [{**r, "updated_at": _us(r["updated_at"])} for r in runners]
    file_name = f"part-{batch:06d}.parquet"
    mode = "in_memory" if opts.workers <= 1 else "multi_threading"
    options = PipelineOptions(
        [f"--direct_num_workers={max(1, opts.workers)}", f"--direct_running_mode={mode}"]
    )
    t0 = time.perf_counter()
    pipeline = beam.Pipeline(runner=FnApiRunner(), options=options)
    out = pipeline | "StrideFeatureBatch" >> StrideFeatureBatch(
        specs,
        str(prev_state) if prev_state is not None and prev_state.exists() else [],
        {int(k): v for k, v in ckpt.get("partition_max", {}).items()},
        runners,
        opts.params,
        reader=opts.kafka_reader,
    )
    partition_max: dict[str, int] = dict(ckpt.get("partition_max", {}))
    maxima_path = staging / "partition_max.json"
    sinks = {
        table: ("parquet", (staging / table, schema, file_name, ("date",), sort_by))
        for table, (schema, sort_by) in OUTPUT_TABLES.items()
    }
    sinks["runners"] = ("parquet", (staging / "runners", RUNNERS, "part-0.parquet", (), ("runner_id",)))
    sinks["state"] = ("state", (staging / "carry.arrow",))
    sinks["partition_max"] = ("json", (maxima_path,))
    pcolls = {name: out[name] for name in sinks if name != "partition_max"}
    pcolls["partition_max"] = out["partition_max"] | "MaximaList" >> beam.Map(lambda kv: [list(kv)])
    _ = pcolls | "WriteTables" >> WriteTables(sinks)
    result = pipeline.run()
    result.wait_until_finish()
    seconds = time.perf_counter() - t0
    counters: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter())["counters"]:
        name = c.key.metric.name
        counters[name] = counters.get(name, 0) + int(c.committed or c.attempted or 0)
    if maxima_path.exists():
        for p, v in json.loads(maxima_path.read_text()):
            partition_max[str(p)] = max(int(v), int(partition_max.get(str(p), v)))
        maxima_path.unlink()
    staged = sorted(str(f.relative_to(staging)) for f in staging.rglob("*.parquet"))
    messages = counters.get("records_read", 0)
    nbytes = counters.get("bytes_read", 0)
    avg = ckpt.get("avg_bytes", DEFAULT_AVG_MESSAGE_BYTES)
    if messages:
        avg = int(0.5 * avg + 0.5 * nbytes / messages) if ckpt.get("avg_bytes") else int(nbytes / messages)
    new = {
        "version": 1,
        "batch": batch,
        "offsets": new_offsets,
        "partition_max": partition_max,
        "state_file": f"staging/{batch}/carry.arrow",
        "staged": staged,
        "published": False,
        "avg_bytes": avg,
        "committed_at_us": time.time_ns() // 1000,
    }
    write_checkpoint(paths, new)  # <- commit point
    finish_publish(opts, new)
    return BatchResult(batch, messages, nbytes, seconds, counters, staged)


def _us(v) -> int:
    if isinstance(v, int):
        return v
    return int(v.timestamp() * 1_000_000) if hasattr(v, "timestamp") else int(v)


def run(
    opts: StreamOptions,
    once: bool = False,
    until_idle_s: float | None = None,
    on_batch: Callable[[BatchResult, int], None] | None = None,
    log: Callable[[str], None] = print,
    poll_s: float = 1.0,
) -> list[BatchResult]:
    """Run batches until the backlog is empty (``once``: one batch) or idle for ``until_idle_s``.

    Without ``once`` and ``until_idle_s`` it runs forever (a long-lived streaming process).
    """
    if opts.kafka_reader == "java" and shutil.which("java") is None:
        raise RuntimeError("--kafka-reader=java needs Java and Beam's Kafka expansion service; use python")
    topics.apply(opts.bootstrap)
    results: list[BatchResult] = []
    ckpt = load_checkpoint(opts.paths)
    finish_publish(opts, ckpt, log)
    idle_since = time.monotonic()
    while True:
        ckpt = load_checkpoint(opts.paths)
        specs, offsets, backlog = plan_ranges(opts, ckpt)
        if specs:
            res = run_batch(opts, ckpt, specs, offsets)
            results.append(res)
            if on_batch:
                on_batch(res, backlog)
            idle_since = time.monotonic()
            if once:
                break
            continue
        if once or until_idle_s is not None and time.monotonic() - idle_since >= until_idle_s:
            break
        time.sleep(poll_s)
    return results
