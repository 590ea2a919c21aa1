"""kafka-python helpers: a keyed producer, exact end offsets, and bounded partition reads.

Tansu under-reports ListOffsets(LATEST) (last batch base offset + 1), so end offsets are taken from
the high watermark of a fetch response instead.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.partitioner.default import DefaultPartitioner, murmur2

MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class KeyCachingPartitioner(DefaultPartitioner):
    """kafka-python's default partitioner (murmur2 of the key, as the Java client), remembered per
    ``(topic, partition count, key)``: the same partition for every key, without hashing a runner id
    in pure Python for each of its thousands of records (~8 us a send). Keyless records and topics
    whose partition count changes take the default path / a fresh entry."""

    MAX_ENTRIES = 100_000

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int, bytes], int] = {}

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
        if serialized_key is None:
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        parts = cluster.partitions_for_topic(topic)
        if not parts:
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        entry = (topic, len(parts), serialized_key)
        found = self._cache.get(entry)
        if found is None:
            if len(self._cache) >= self.MAX_ENTRIES:
                self._cache.clear()
            found = self._cache[entry] = sorted(parts)[(murmur2(serialized_key) & 0x7FFFFFFF) % len(parts)]
        return found


def make_producer(bootstrap: str, client_id: str = "gluteflow", **overrides) -> KafkaProducer:
    """Producer with acks=all, retries and batching; keys and values are bytes."""
    config = dict(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        retries=10,
        linger_ms=20,
        batch_size=1024 * 1024,
        max_request_size=MAX_MESSAGE_BYTES,
        max_in_flight_requests_per_connection=1,
        metrics_enabled=False,
        partitioner=KeyCachingPartitioner(),
    )
    config.update(overrides)
    return KafkaProducer(**config)


def make_consumer(bootstrap: str, client_id: str = "gluteflow-reader", **overrides) -> KafkaConsumer:
    """Consumer for explicit assignment (no group join: instant on Tansu); offsets managed by the caller."""
    config = dict(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 * 1024 * 1024,
        fetch_max_wait_ms=50,  # default 500: every poll of an empty partition waited 0.5 s
        max_partition_fetch_bytes=16 * 1024 * 1024,
        max_poll_records=5000,
        metrics_enabled=False,  # per-fetch sensor bookkeeping nobody reads: ~2% of the stream job's CPU
    )
    config.update(overrides)
    return KafkaConsumer(**config)


def partitions_of(consumer: KafkaConsumer, topic: str, timeout_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic} not found")
        consumer.topics()  # refresh metadata
        time.sleep(0.05)


def end_offsets(bootstrap: str, topic: str, consumer: KafkaConsumer | None = None) -> dict[int, int]:
    """Exact end offset (high watermark) per partition, from a fetch response."""
    own = consumer is None
    consumer = consumer or make_consumer(bootstrap, max_poll_records=1, fetch_max_bytes=1024)
    try:
        parts = [TopicPartition(topic, p) for p in partitions_of(consumer, topic)]
        consumer.assign(parts)
        beginnings = consumer.beginning_offsets(parts)
        for tp in parts:
            consumer.seek(tp, beginnings[tp])
        result: dict[int, int] = {}
        deadline = time.monotonic() + 15.0
        while len(result) < len(parts) and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200, max_records=1)
            for tp in parts:
                hw = consumer.highwater(tp)
                if hw is not None:
                    result[tp.partition] = hw
        missing = [tp.partition for tp in parts if tp.partition not in result]
        if missing:
            raise RuntimeError(f"no high watermark for {topic} partitions {missing}")
        return result
    finally:
        if own:
            consumer.close()


def read_partition(
    consumer: KafkaConsumer, topic: str, partition: int, start: int, stop: int
) -> Iterator[tuple[int, bytes | None, bytes]]:
    """Yield (offset, key, value) for offsets in [start, stop) of one partition."""
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, start)
    position = start
    idle_polls = 0
    while position < stop:
        batch = consumer.poll(timeout_ms=500)
        records = batch.get(tp, [])
        if not records:
            idle_polls += 1
            if idle_polls > 60:
                raise RuntimeError(f"{topic}[{partition}] stalled at offset {position} before {stop}")
            continue
        idle_polls = 0
        for rec in records:
            if rec.offset >= stop:
                return
            position = rec.offset + 1
            yield rec.offset, rec.key, rec.value


def topic_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Messages currently in each topic (sum over partitions of end - beginning)."""
    consumer = make_consumer(bootstrap, max_poll_records=1, fetch_max_bytes=1024)
    try:
        out = {}
        for name in topics:
            ends = end_offsets(bootstrap, name, consumer)
            begins = consumer.beginning_offsets([TopicPartition(name, p) for p in ends])
            out[name] = sum(ends[p] - begins[TopicPartition(name, p)] for p in ends)
        return out
    finally:
        consumer.close()


# ---------------------------------------------------------------------------------- checkpoint offsets
#: what ``gluteflow stream --reset-offsets`` may do with offsets that no longer point into the log
RESET_CHOICES = ("earliest", "latest")


class OffsetsOutOfRange(RuntimeError):
    """Checkpointed offsets that no longer point into their partitions (as Kafka's OffsetOutOfRange)."""


def topic_ids(bootstrap: str, names: list[str]) -> dict[str, str]:
    """Each topic's id (KIP-516): a topic deleted and created again under its name gets a new one."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="gluteflow-topic-ids")
    try:
        return {t["name"]: str(t["topic_id"]) for t in admin.describe_topics(names) if t.get("topic_id")}
    finally:
        admin.close()


def invalid_offsets(
    committed: dict[str, dict[str, int]],
    ids_then: dict[str, str],
    begins: dict[tuple[str, int], int],
    ends: dict[tuple[str, int], int],
    ids_now: dict[str, str],
) -> dict[tuple[str, int], str]:
    """Partitions whose checkpointed offset (``committed[topic][str(partition)]``) no longer points into
    the log the broker holds now, with why: the topic was recreated (its id changed), the offset is past
    the partition's end (the broker lost its messages: the in-memory embedded broker after a restart),
    or before its beginning (messages deleted by retention before they were read)."""
    bad: dict[tuple[str, int], str] = {}
    for (topic, part), end in ends.items():
        offset = committed.get(topic, {}).get(str(part))
        if offset is None:
            continue  # never read: starts at the beginning
        was, now = ids_then.get(topic), ids_now.get(topic)
        if was is not None and now is not None and was != now:
            bad[(topic, part)] = f"topic recreated (id {was[:8]}... is now {now[:8]}...)"
        elif offset > end:
            bad[(topic, part)] = f"checkpoint at offset {offset}, the partition ends at {end}"
        elif offset < begins[(topic, part)]:
            lost = begins[(topic, part)] - offset
            bad[(topic, part)] = f"{lost} messages from offset {offset} were deleted before they were read"
    return bad


def describe_invalid_offsets(bootstrap: str, bad: dict[tuple[str, int], str]) -> str:
    """One readable error: what happened, where, and the two ways on."""
    shown = "; ".join(f"{t}[{p}]: {why}" for (t, p), why in sorted(bad.items())[:3])
    more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
    return (
        f"the stream checkpoint does not match the broker at {bootstrap} for {len(bad)} partition(s): "
        f"{shown}{more}. Nothing was read. Rerun with --reset-offsets earliest to read what those partitions "
        "hold now, or --reset-offsets latest to skip it (see docs/stream.md, 'Offsets out of range')"
    )


# ------------------------------------------------------------------------------------ broker reachable
class BrokerUnavailable(RuntimeError):
    """The broker is not running, or did not answer for longer than the job waits."""


def probe_broker(bootstrap: str, timeout_s: float = 3.0) -> tuple[bool, str] | None:
    """``None`` when the broker answers a metadata request within ``timeout_s``; else ``(stopped,
    why)``: ``stopped`` when nothing listens at any bootstrap address (connection refused), otherwise
    it accepted the connection but did not answer (paused, overloaded, or not Kafka)."""
    from kafka import KafkaAdminClient

    refused: list[str] = []
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
        except ConnectionRefusedError:
            refused.append(address)
        except (OSError, ValueError) as exc:
            refused.append(f"{address} ({exc})")
    if len(refused) == len(bootstrap.split(",")):
        return True, f"connection refused at {', '.join(refused)}"
    ms = int(timeout_s * 1000)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="gluteflow-probe",
            bootstrap_timeout_ms=ms,
            request_timeout_ms=ms,
        )
    except Exception:  # kafka-python raises several types when it cannot bootstrap
        return (
            False,
            f"it accepts connections but did not answer within {timeout_s:g} s (paused or overloaded?)",
        )
    try:
        admin.list_topics()
    except Exception:
        return False, f"it did not answer a metadata request within {timeout_s:g} s (paused or overloaded?)"
    finally:
        admin.close()
    return None


def wait_for_broker(bootstrap: str, log, max_wait_s: float, poll_s: float = 1.0) -> None:
    """Return once the broker answers. A stopped broker (refused) raises :class:`BrokerUnavailable` at
    once; one that does not answer is waited for up to ``max_wait_s``, saying so once, and saying when
    it answers again."""
    deadline = time.monotonic() + max_wait_s
    said = False
    while (state := probe_broker(bootstrap)) is not None:
        stopped, why = state
        if stopped:
            raise BrokerUnavailable(
                f"the Kafka broker at {bootstrap} is not running ({why}). Start it (`gluteflow broker start`, "
                "or your cluster) and rerun: the job resumes from its checkpoint, nothing is lost"
            )
        if time.monotonic() > deadline:
            raise BrokerUnavailable(
                f"the Kafka broker at {bootstrap} did not answer for {max_wait_s:g} s ({why}). Check it and "
                "rerun: the job resumes from its checkpoint, nothing is lost"
            )
        if not said:
            log(f"waiting for the Kafka broker at {bootstrap}: {why}; giving up after {max_wait_s:g} s")
            said = True
        time.sleep(poll_s)
    if said:
        log(f"the Kafka broker at {bootstrap} answers again; resuming")


def close_producer(producer: KafkaProducer, timeout_s: float = 10.0) -> None:
    """Close ``producer``, also when the broker is gone: kafka-python's ``close()`` flushes first and
    raises on a flush timeout before it reaches its own force close, so the producer stays open and
    its ``__del__`` prints that traceback again at exit. Here the sender is force-closed instead (the
    records it held are the caller's to redo: they were reported as not delivered)."""
    from kafka.errors import KafkaTimeoutError

    try:
        producer.close(timeout=timeout_s)
    except KafkaTimeoutError:
        if producer._sender is not None:  # private, for the library's missing force close
            producer._sender.force_close()
        producer._closed = True
