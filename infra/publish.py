"""The one way events enter Kafka: validate, encode, send keyed by runner, or dead-letter.

Counts reconcile: ``in == accepted + dead_lettered`` (see :class:`PublishCounts`).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from kafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2

from infra import topics
from infra.kafka_io import make_producer
from schemas.codec import encode
from schemas.events import DeadLetter, Event, RunnerProfile, SensorBlock, SessionMarker, WatchRecord
from schemas.validate import Rejection, check

TOPIC_KEY_BY_TYPE: dict[type, str] = {
    SensorBlock: "sensor_blocks",
    WatchRecord: "watch_records",
    SessionMarker: "sessions",
    RunnerProfile: "runner_profiles",
    DeadLetter: "dead_letters",
}


@dataclass
class PublishCounts:
    received: int = 0
    accepted: int = 0
    dead_lettered: int = 0
    bytes_sent: int = 0
    by_topic: Counter = field(default_factory=Counter)
    by_reason: Counter = field(default_factory=Counter)

    def reconciles(self) -> bool:
        return self.received == self.accepted + self.dead_lettered

    def merge(self, other: PublishCounts) -> None:
        self.received += other.received
        self.accepted += other.accepted
        self.dead_lettered += other.dead_lettered
        self.bytes_sent += other.bytes_sent
        self.by_topic.update(other.by_topic)
        self.by_reason.update(other.by_reason)


def make_dead_letter(
    rejection: Rejection,
    stage: str,
    original: bytes,
    event: Event | None = None,
    source_file: str | None = None,
    source_topic: str | None = None,
    source_partition: int | None = None,
    source_offset: int | None = None,
    now_us: int | None = None,
) -> DeadLetter:
    """Wrap a rejected input in the dead-letter envelope."""
    return DeadLetter(
        reason=rejection.reason,
        detail=rejection.detail,
        stage=stage,
        original=original,
        dead_lettered_at_us=now_us if now_us is not None else time.time_ns() // 1000,
        runner_id=getattr(event, "runner_id", None) or None,
        device_id=getattr(event, "device_id", None) or None,
        session_id=getattr(event, "session_id", None) or None,
        seq=getattr(event, "seq", None) if isinstance(getattr(event, "seq", None), int) else None,
        source_file=source_file,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
    )


class _KeyPartitioner(DefaultPartitioner):
    """kafka-python's default keyed partitioning (murmur2(key) mod partitions over the sorted partition
    list), with the pure-Python murmur2 hash memoised per key: there are only a few keys (runner ids)."""

    _MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._hash: dict[bytes, int] = {}
        self._sorted: dict[str, tuple[set, list]] = {}

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
        parts = cluster.partitions_for_topic(topic) if serialized_key is not None else None
        if not parts:  # unkeyed, or topic unknown: the default behaviour (random / ValueError)
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        h = self._hash.get(serialized_key)
        if h is None:
            if len(self._hash) >= self._MAX_KEYS:
                self._hash.clear()
            h = self._hash[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
        cached = self._sorted.get(topic)
        if cached is None or cached[0] != parts:
            cached = self._sorted[topic] = (parts, sorted(parts))
        return cached[1][h % len(cached[1])]


class Publisher:
    """Validating, keyed producer. Use as a context manager; ``counts`` reconcile at the end.

    Parameters
    ----------
    bootstrap : Kafka bootstrap servers.
    stage : name recorded in dead letters (``simulate``, ``import-fit``, ...).
    now_us : clock for the future-timestamp check (defaults to the wall clock).
    """

    def __init__(self, bootstrap: str, stage: str, now_us: int | None = None, **producer_overrides):
        self.stage = stage
        self.now_us = now_us
        producer_overrides.setdefault("partitioner", _KeyPartitioner())
        self.producer = make_producer(bootstrap, client_id=f"gluteflow-{stage}", **producer_overrides)
        self.counts = PublishCounts()
        self._topics = {cls: topics.topic(key) for cls, key in TOPIC_KEY_BY_TYPE.items()}

    def _send(self, event: Event, value: bytes) -> None:
        name = self._topics[type(event)]
        self.producer.send(name, key=event.key, value=value)
        self.counts.by_topic[name] += 1
        self.counts.bytes_sent += len(value)

    def publish(self, event: Event, source_file: str | None = None) -> Rejection | None:
        """Validate and send ``event``; on rejection send a dead letter instead and return the reason."""
        self.counts.received += 1
        rejection = check(event, now_us=self.now_us)
        try:
            value = encode(event)
        except Exception as exc:  # unencodable: wrong types for the schema
            rejection = rejection or Rejection("bad_type", f"cannot encode {type(event).__name__}: {exc}")
            value = repr(event).encode()[:65536]
        if rejection is None:
            self._send(event, value)
            self.counts.accepted += 1
            return None
        self.dead_letter(make_dead_letter(rejection, self.stage, value, event, source_file=source_file))
        return rejection

    def dead_letter(self, letter: DeadLetter) -> None:
        """Send a dead letter (counted once as dead-lettered)."""
        self._send(letter, encode(letter))
        self.counts.dead_lettered += 1
        self.counts.by_reason[letter.reason] += 1

    def flush(self) -> None:
        self.producer.flush()

    def close(self) -> PublishCounts:
        self.producer.flush()
        self.producer.close()
        return self.counts

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
