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
4 is completed by step 1. Lake file names depend only on the batch number and shard, so nothing is
duplicated.

The batch's pipeline is :class:`pipelines.stream.transforms.SessionStrides`, the composite every
runner executes; its sessions' Beam state crosses batches as snapshots (step 3 writes them with the
batch's outputs, the next batch restores them), and the batch's record-time watermark caps its timers.

Shards (``--workers N``): a batch is split by Kafka partition index over N worker processes (the
standard library's ``ProcessPoolExecutor``, forked once per run: a process's first pipeline is its
slowest), each running its own bounded pipeline (kafka-python, Avro decoding and the science are
GIL-bound Python, so processes, not threads, use more cores). The runner-keyed input topics are
co-partitioned (same partition count, runner id as key), so a runner's events and snapshots all belong
to one shard. Shard ``k`` writes ``part-<N:06d>-<k>.parquet`` and ``carry-<k>.arrow``; the commit
point stays one checkpoint for the whole batch. Workers die with the driver (``PR_SET_PDEATHSIG``), so
a killed job leaves nothing writing into a staging directory that its rerun has wiped.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from kafka import TopicPartition

from infra import topics
from infra.job_lock import exclusive
from infra.kafka_io import (
    RESET_CHOICES,
    OffsetsOutOfRange,
    close_producer,
    describe_invalid_offsets,
    invalid_offsets,
    make_consumer,
    make_producer,
    probe_broker,
    topic_ids,
    wait_for_broker,
)
from infra.procs import die_with_parent
from infra.settings import Paths
from pipelines.io.kafka_sink import topic_messages
from pipelines.io.kafka_source import CAUGHT_UP_WATERMARK_LAG_S, PartitionSpec, ReadKafkaPartitions
from pipelines.io.parquet_sink import WriteTables, read_state_file, read_state_keys
from pipelines.lake import read_table
from pipelines.stream.sessionize import StreamParams
from pipelines.stream.transforms import OUTPUT_TABLES, LatestProfiles, RestoredSnapshots, SessionStrides
from schemas.tables import RUNNERS

INPUT_TOPIC_KEYS = ("sensor_blocks", "watch_records", "sessions", "runner_profiles", "dead_letters")
# keyed by runner id with one partition count: partition index p of each holds the same runners
CO_PARTITIONED_KEYS = ("sensor_blocks", "watch_records", "sessions")
DEFAULT_MAX_BATCH_BYTES = 64 * 1024 * 1024
DEFAULT_AVG_MESSAGE_BYTES = 20_000
CONSUMER_GROUP = "gluteflow-stream"
#: the record-time watermark of a draining batch: every timer fires
DRAIN_WATERMARK_US = 2**62
#: checkpoints before version 3 carried session state in another format (its sessions restart)
CHECKPOINT_VERSION = 3


@dataclass
class StreamOptions:
    bootstrap: str
    paths: Paths
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    params: StreamParams = field(default_factory=StreamParams)
    # shard processes per batch (each an in-memory FnApiRunner; Beam's multi_threading and
    # multi_processing modes were measured slower here). 0 = one per core, at most 4.
    workers: int = 0
    split_offsets: int = 0
    # where checkpointed offsets no longer point into the log: None = stop and say so (issue 13)
    reset_offsets: str | None = None  # earliest | latest
    # how long to wait for a broker that accepts connections but does not answer (paused, overloaded)
    broker_wait_s: float = 300.0

    @property
    def n_workers(self) -> int:
        return self.workers if self.workers > 0 else max(1, min(4, os.cpu_count() or 1))


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
        return {"version": CHECKPOINT_VERSION, "batch": 0, "offsets": {}, "published": True, "staged": []}
    ckpt = json.loads(path.read_text())
    if ckpt.get("version", 1) < CHECKPOINT_VERSION and ckpt.get("published", True) is False:
        raise RuntimeError(
            f"{path} was written by an older gluteflow whose batch was not published; finish it with that "
            "version, or start from a fresh --data-dir"
        )
    if ckpt.get("version", 1) < CHECKPOINT_VERSION:  # its carry-over files are of the old format
        ckpt = {**ckpt, "state_files": [], "state_file": None}
    return ckpt


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


def _shard_of_file(rel: str) -> int:
    """Shard index from a staged file name ``part-<batch>-<shard>.parquet`` (0 for other names)."""
    parts = Path(rel).stem.split("-")
    return int(parts[2]) if len(parts) == 3 and parts[0] == "part" else 0


def _publish_files(bootstrap: str, files: list[Path]) -> None:
    """Send the strides and this job's dead letters of ``files`` (lake paths) to their topics. A message
    not delivered raises (issue 13: a broker stopped mid-publish must not leave the batch marked
    published with its messages lost); the batch is then published again by the next run."""
    # fail within 45 s instead of kafka-python's 120 s when the broker is gone
    producer = make_producer(
        bootstrap, client_id="gluteflow-stream", delivery_timeout_ms=45_000, request_timeout_ms=15_000
    )
    failed: list[Exception] = []
    try:
        for dst in files:
            for topic, key, value in topic_messages(dst.parent.parent.name, pq.read_table(dst)):
                producer.send(topic, key=key, value=value).add_errback(failed.append)
        producer.flush(timeout=60)  # kafka-python can wait forever on a broker that is gone
        if failed:
            raise RuntimeError(f"{len(failed)} messages of the batch were not delivered: {failed[0]}")
    finally:
        close_producer(producer)


def finish_publish(
    opts: StreamOptions, ckpt: dict, log: Callable[[str], None] = print, pool: Executor | None = None
) -> None:
    """Step 5 of the protocol; safe to repeat. Each shard's files are sent by one producer (in
    parallel over shards, in ``pool``'s workers), so one runner's strides reach the topic in order."""
    if ckpt.get("published", True):
        return
    paths = opts.paths
    batch = ckpt["batch"]
    staging = stream_dir(paths) / "staging" / str(batch)
    by_shard: dict[int, list[Path]] = {}
    for rel in ckpt["staged"]:
        src, dst = staging / rel, paths.lake / rel
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        if dst.exists() and Path(rel).parts[0] in ("strides", "dead_letters"):
            by_shard.setdefault(_shard_of_file(rel), []).append(dst)
    groups = [files for _, files in sorted(by_shard.items())]
    if pool is not None:
        list(pool.map(_publish_files, [opts.bootstrap] * len(groups), groups))
    else:
        for files in groups:
            _publish_files(opts.bootstrap, files)
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
                },
                timeout_ms=15_000,  # informational: never hang the job on it (a broker gone meanwhile)
            )
        finally:
            consumer.close(autocommit=False, timeout_ms=5_000)
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


@dataclass
class BatchPlan:
    """The next batch: offset ranges (capped by bytes), the offsets after it, the whole backlog in
    messages, and the partition count of every input topic."""

    specs: list[PartitionSpec]
    offsets: dict
    backlog: int
    partition_counts: dict[str, int]
    #: record time (us) up to which the input is complete after this batch: the planning clock minus a
    #: margin when the batch reads every partition to its end, else the epoch (a backlog: no session
    #: counts as quiet until the job has caught up)
    watermark_us: int = 0
    topic_ids: dict[str, str] = field(default_factory=dict)


@dataclass
class Shard:
    """One process's part of a batch: its ranges and the partition indices whose keys it owns
    (``None``: the only shard, it owns every key)."""

    index: int
    specs: list[PartitionSpec]
    owned: frozenset[int] | None


def plan_ranges(opts: StreamOptions, ckpt: dict, log: Callable[[str], None] = print) -> BatchPlan:
    """Offset ranges for the next batch, capped to ``max_batch_bytes`` by the mean message size."""
    names = [topics.topic(key) for key in INPUT_TOPIC_KEYS]
    planned_at_us = time.time_ns() // 1000
    begins, ends, sizes = _high_watermarks(opts.bootstrap, names)
    ckpt, ids = _checked_offsets(opts, ckpt, begins, ends, names, log)  # issue 13
    counts: dict[str, int] = {}
    backlog: dict[tuple[str, int], tuple[int, int]] = {}
    for tp, end in ends.items():
        counts[tp.topic] = counts.get(tp.topic, 0) + 1
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
    caught_up = total <= budget
    watermark = planned_at_us - int(CAUGHT_UP_WATERMARK_LAG_S * 1e6) if caught_up else 0
    return BatchPlan(specs, offsets, total, counts, watermark, ids)


def _checked_offsets(
    opts: StreamOptions, ckpt: dict, begins: dict, ends: dict, names: list[str], log: Callable[[str], None]
) -> tuple[dict, dict[str, str]]:
    """The checkpoint with its offsets checked against the broker's log (topic ids, ends, beginnings):
    stop with :class:`OffsetsOutOfRange`, or with ``opts.reset_offsets`` move just the invalid ones to
    the earliest / latest offset and commit that at once. Returns ``(checkpoint, topic ids now)``."""
    ids = topic_ids(opts.bootstrap, names)
    flat_begins = {(tp.topic, tp.partition): o for tp, o in begins.items()}
    flat_ends = {(tp.topic, tp.partition): o for tp, o in ends.items()}
    bad = invalid_offsets(ckpt["offsets"], ckpt.get("topic_ids", {}), flat_begins, flat_ends, ids)
    if not bad:
        return ckpt, ids
    if opts.reset_offsets not in RESET_CHOICES:
        raise OffsetsOutOfRange(describe_invalid_offsets(opts.bootstrap, bad))
    to = flat_begins if opts.reset_offsets == "earliest" else flat_ends
    offsets = {t: dict(parts) for t, parts in ckpt["offsets"].items()}
    for t, p in bad:
        offsets[t][str(p)] = to[(t, p)]
    ckpt = {**ckpt, "offsets": offsets, "topic_ids": ids, "reset_at_us": time.time_ns() // 1000}
    write_checkpoint(opts.paths, ckpt)
    where = ", ".join(f"{t}[{p}]" for t, p in sorted(bad))
    log(f"offsets reset to {opts.reset_offsets} for {len(bad)} partition(s) no longer in range: {where}")
    return ckpt, ids


def plan_shards(plan: BatchPlan, n_workers: int) -> list[Shard]:
    """Split a batch over at most ``n_workers`` processes by partition index of the co-partitioned
    topics (greedy: the heaviest index to the lightest shard, by messages in the batch). Other
    topics (profiles, dead letters) go to shard 0. One shard when the co-partitioned topics do not
    share a partition count (then a runner's events need not share an index)."""
    co = [topics.topic(k) for k in CO_PARTITIONED_KEYS]
    n_parts = {plan.partition_counts.get(t) for t in co}
    if n_workers <= 1 or len(n_parts) != 1 or None in n_parts:
        return [Shard(0, list(plan.specs), None)]
    n_partitions = n_parts.pop()
    weight = dict.fromkeys(range(n_partitions), 0)
    for spec in plan.specs:
        if spec.topic in co:
            weight[spec.partition] += spec.stop - spec.start
    n = min(n_workers, n_partitions)
    load, owned = [0] * n, [set() for _ in range(n)]
    for p in sorted(weight, key=lambda p: (-weight[p], p)):
        k = min(range(n), key=lambda k: (load[k], k))
        owned[k].add(p)
        load[k] += weight[p]
    owner = {p: k for k in range(n) for p in owned[k]}
    shard_specs: list[list[PartitionSpec]] = [[] for _ in range(n)]
    for spec in plan.specs:
        shard_specs[owner[spec.partition] if spec.topic in co else 0].append(spec)
    return [Shard(k, shard_specs[k], frozenset(owned[k])) for k in range(n)]


def _restore_rows(paths: Paths, ckpt: dict, owned: frozenset[int] | None) -> list:
    """The previous batch's session snapshots whose home partition this shard owns (``None``: all)."""
    rows = []
    for path in _previous_state_files(paths, ckpt):
        for runner, session, part, blob in read_state_file(Path(path)):
            if owned is None or part in owned or (part < 0 and 0 in owned):
                rows.append((runner, session, part, blob))
    return rows


def _shard_pipeline(
    opts: StreamOptions,
    plan: BatchPlan,
    shard: Shard,
    staging: Path,
    batch: int,
    restore: list,
    runners: list,
) -> beam.Pipeline:
    """One shard's bounded pipeline for one batch: Kafka ranges -> :class:`SessionStrides` -> files."""
    options = PipelineOptions(["--direct_num_workers=1", "--direct_running_mode=in_memory"])
    p = beam.Pipeline(runner=FnApiRunner(), options=options)
    msgs = (
        p | "PartitionRanges" >> beam.Create(shard.specs) | "ReadKafka" >> ReadKafkaPartitions(as_lists=True)
    )
    restored = p | "Snapshots" >> RestoredSnapshots(restore)
    out = msgs | "SessionStrides" >> SessionStrides(
        opts.params,
        event_time_cap_us=plan.watermark_us,
        restore=restored,
        dead_letters_dir=opts.paths.table("dead_letters"),
    )
    existing = p | "ExistingRunners" >> beam.Create(runners)
    pcolls = {name: out[name] for name in OUTPUT_TABLES}
    pcolls["runners"] = (
        out["profiles"]
        | "LatestProfiles" >> LatestProfiles(existing)
        | "RunnerRowList" >> beam.Map(lambda r: [r])
    )
    pcolls["state"] = out["snapshots"]
    name = f"part-{batch:06d}-{shard.index}.parquet"
    sinks = {
        table: ("parquet", (str(staging / table), schema, name, ("date",), sort_by))
        for table, (schema, sort_by) in OUTPUT_TABLES.items()
    }
    sinks["runners"] = ("parquet", (str(staging / "runners"), RUNNERS, "part-0.parquet", (), ("runner_id",)))
    sinks["state"] = ("state", (str(staging / f"carry-{shard.index}.arrow"),))
    _ = pcolls | "WriteTables" >> WriteTables(sinks)
    return p


def _run_shard(opts: StreamOptions, ckpt: dict, plan: BatchPlan, batch: int, shard: Shard, staging: Path):
    """One shard's bounded pipeline; writes its tables and ``carry-<k>.arrow`` under ``staging`` and
    returns its Beam counters."""
    runners: list[dict] = []
    if shard.index == 0:  # the runners table (profiles topic + current table) is shard 0's
        runners = read_table(opts.paths.table("runners"), RUNNERS, partition_cols=()).to_pylist()
        runners = [{**r, "updated_at": _us(r["updated_at"])} for r in runners]
    restore = _restore_rows(opts.paths, ckpt, shard.owned)
    result = _shard_pipeline(opts, plan, shard, staging, batch, restore, runners).run()
    result.wait_until_finish()
    counters: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter())["counters"]:
        name = c.key.metric.name
        counters[name] = counters.get(name, 0) + int(c.committed or c.attempted or 0)
    return counters


def _previous_state_files(paths: Paths, ckpt: dict) -> list[str]:
    names = ckpt.get("state_files") or []
    return [str(stream_dir(paths) / n) for n in names if (stream_dir(paths) / n).exists()]


def _check_keys_disjoint(staging: Path, n_shards: int) -> None:
    """Refuse to commit when two shards carried the same (runner, session): the input topics were
    not co-partitioned by runner id (a producer with another partitioner)."""
    if n_shards <= 1:
        return
    owner: dict[tuple[str, str], int] = {}
    for k in range(n_shards):
        for runner, session in read_state_keys(staging / f"carry-{k}.arrow"):
            other = owner.setdefault((runner, session), k)
            if other != k:
                raise RuntimeError(
                    f"runner {runner} session {session} arrived on partitions of shards {other} and {k}: "
                    "the input topics are not co-partitioned by runner id; rerun with --workers 1"
                )


def run_batch(opts: StreamOptions, ckpt: dict, plan: BatchPlan, pool: Executor | None = None) -> BatchResult:
    """Steps 3-5 for one batch (its shards in ``pool``'s worker processes; without a pool, in this
    process); returns its metrics."""
    paths = opts.paths
    batch = ckpt["batch"] + 1
    staging = stream_dir(paths) / "staging" / str(batch)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shards = plan_shards(plan, opts.n_workers if pool is not None else 1)
    t0 = time.perf_counter()
    args = [(opts, ckpt, plan, batch, sh, staging) for sh in shards]
    results = list(pool.map(_run_shard, *zip(*args, strict=True))) if pool else [_run_shard(*a) for a in args]
    seconds = time.perf_counter() - t0
    _check_keys_disjoint(staging, len(shards))
    counters: dict[str, int] = {}
    for shard_counters in results:
        for name, v in shard_counters.items():
            counters[name] = counters.get(name, 0) + v
    staged = sorted(str(f.relative_to(staging)) for f in staging.rglob("*.parquet"))
    messages = counters.get("records_read", 0)
    nbytes = counters.get("bytes_read", 0)
    avg = ckpt.get("avg_bytes", DEFAULT_AVG_MESSAGE_BYTES)
    if messages:
        avg = int(0.5 * avg + 0.5 * nbytes / messages) if ckpt.get("avg_bytes") else int(nbytes / messages)
    new = {
        "version": CHECKPOINT_VERSION,
        "batch": batch,
        "offsets": plan.offsets,
        "state_files": [f"staging/{batch}/carry-{sh.index}.arrow" for sh in shards],
        "staged": staged,
        "published": False,
        "avg_bytes": avg,
        "shards": len(shards),
        "watermark_us": plan.watermark_us,
        "topic_ids": plan.topic_ids,
        "committed_at_us": time.time_ns() // 1000,
    }
    write_checkpoint(paths, new)  # <- commit point
    finish_publish(opts, new, pool=pool)
    return BatchResult(batch, messages, nbytes, seconds, counters, staged)


def _worker_init(parent_pid: int) -> None:
    die_with_parent(parent_pid)


def _us(v) -> int:
    if isinstance(v, int):
        return v
    return int(v.timestamp() * 1_000_000) if hasattr(v, "timestamp") else int(v)


def run(
    opts: StreamOptions,
    once: bool = False,
    until_idle_s: float | None = None,
    drain: bool = False,
    on_batch: Callable[[BatchResult, int], None] | None = None,
    log: Callable[[str], None] = print,
    poll_s: float = 1.0,
) -> list[BatchResult]:
    """Run batches until the backlog is empty (``once``: one batch) or idle for ``until_idle_s``.

    Without ``once`` and ``until_idle_s`` it runs forever (a long-lived streaming process). ``drain``:
    once idle, one more batch with the watermark at infinity closes every open session (as draining a
    streaming job fires its timers); their later blocks are dead-lettered ``late``.
    """
    # issue 13: one stream job per data dir (a second one would share the staging dirs)
    with exclusive(stream_dir(opts.paths) / "lock", f"a stream job on data dir {opts.paths.root}"):
        wait_for_broker(opts.bootstrap, log, opts.broker_wait_s)  # issue 13: one clear line if it is down
        topics.apply(opts.bootstrap)
        if opts.n_workers <= 1:
            return _run_batches(opts, None, once, until_idle_s, on_batch, log, poll_s, drain)
        # forked (workers share the imported Beam and pyarrow; a spawned one pays ~2 s of imports) and
        # kept for every batch: a process's first pipeline is its slowest
        with ProcessPoolExecutor(
            opts.n_workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        ) as pool:
            return _run_batches(opts, pool, once, until_idle_s, on_batch, log, poll_s, drain)


def _next_batch(
    opts: StreamOptions, pool: Executor | None, log: Callable[[str], None]
) -> tuple[BatchPlan, BatchResult | None] | None:
    """Plan and run the next batch (``(plan, None)`` when there is nothing to read). A broker that does
    not answer is waited for, saying so; a stopped one raises :class:`BrokerUnavailable` (one line). A
    batch that failed because the broker went away returns ``None``: the commit protocol redoes it."""
    wait_for_broker(opts.bootstrap, log, opts.broker_wait_s)
    ckpt = load_checkpoint(opts.paths)
    try:
        plan = plan_ranges(opts, ckpt, log)
        return plan, (run_batch(opts, ckpt, plan, pool) if plan.specs else None)
    except OffsetsOutOfRange:
        raise
    except Exception:
        if probe_broker(opts.bootstrap) is None:
            raise  # the broker answers: a real fault, not an outage
        wait_for_broker(opts.bootstrap, log, opts.broker_wait_s)
        finish_publish(opts, load_checkpoint(opts.paths), log, pool)
        return None


def _run_batches(
    opts: StreamOptions,
    pool: Executor | None,
    once: bool,
    until_idle_s: float | None,
    on_batch: Callable[[BatchResult, int], None] | None,
    log: Callable[[str], None],
    poll_s: float,
    drain: bool = False,
) -> list[BatchResult]:
    results: list[BatchResult] = []
    ckpt = load_checkpoint(opts.paths)
    finish_publish(opts, ckpt, log, pool)
    idle_since = time.monotonic()
    while True:
        step = _next_batch(opts, pool, log)  # issue 13: waits out (or reports) a broker that went away
        if step is None:
            continue
        plan, res = step
        if plan.specs:
            results.append(res)
            if on_batch:
                on_batch(res, plan.backlog)
            idle_since = time.monotonic()
            if once:
                break
            continue
        if once or until_idle_s is not None and time.monotonic() - idle_since >= until_idle_s:
            break
        time.sleep(poll_s)
    if drain and not once:
        ckpt = load_checkpoint(opts.paths)
        if ckpt.get("state_files"):
            drained = BatchPlan([], ckpt["offsets"], 0, {}, DRAIN_WATERMARK_US, ckpt.get("topic_ids", {}))
            results.append(run_batch(opts, ckpt, drained, pool))
    return results
