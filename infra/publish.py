"""The one way events enter Kafka: validate, encode, send keyed by runner, or dead-letter.

Counts reconcile: ``in == accepted + dead_lettered`` (see :class:`PublishCounts`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import NamedTuple

from kafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2

from infra import topics
from infra.kafka_io import make_producer
from schemas.codec import encode
from schemas.events import DeadLetter, Event, RunnerProfile, SensorBlock, SessionMarker, WatchRecord
from schemas.validate import WITHHELD_REASONS, Rejection, check, valid_id

TOPIC_KEY_BY_TYPE: dict[type, str] = {
    SensorBlock: "sensor_blocks",
    WatchRecord: "watch_records",
    SessionMarker: "sessions",
    RunnerProfile: "runner_profiles",
    DeadLetter: "dead_letters",
}


class Prepared(NamedTuple):
    """A validated, encoded record ready to send: the event itself (``rejection`` None) or the dead
    letter that replaces it (``rejection`` says why)."""

    topic: str
    key: bytes | None
    value: bytes
    rejection: Rejection | None


def topic_kinds() -> dict[str, str]:
    """Topic name (with this process's prefix) -> the one message kind it carries."""
    return {topics.topic(key): cls.KIND for cls, key in TOPIC_KEY_BY_TYPE.items()}


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
    """Wrap a rejected input in the dead-letter envelope. Ids outside the id contract are not copied
    (they become the letter's key and lake columns), and an input holding contact data is withheld:
    the lake, its files and the logs get pseudonymous ids and bands only."""

    def ident(name: str) -> str | None:
        value = getattr(event, name, None)
        return value if valid_id(value) else None

    detail = rejection.detail
    if rejection.reason in WITHHELD_REASONS:
        original, detail = b"", f"{detail}; original withheld ({len(original)} bytes, personal data)"
    return DeadLetter(
        reason=rejection.reason,
        detail=detail,
        stage=stage,
        original=original,
        dead_lettered_at_us=now_us if now_us is not None else time.time_ns() // 1000,
        runner_id=ident("runner_id"),
        device_id=ident("device_id"),
        session_id=ident("session_id"),
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


def _producer_child(fd_in: int, fd_out: int) -> None:
    """Child side of :class:`_ProcessProducer`: a KafkaProducer fed (topic, key, value) batches in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop (it flushes on exit)
    conn_in = Connection(fd_in, writable=False)
    conn_out = Connection(fd_out, readable=False)
    try:
        bootstrap, client_id, overrides = conn_in.recv()
        producer = make_producer(bootstrap, client_id=client_id, **overrides)
    except Exception:
        conn_out.send(("error", traceback.format_exc()))
        return
    conn_out.send(("ready", None))
    try:
        while True:
            try:
                msg = conn_in.recv()
            except EOFError:  # parent gone without closing: nothing to report to
                producer.close(timeout=5)
                return
            if msg is None:
                producer.flush()
                producer.close()
                conn_out.send(("closed", None))
                return
            if msg == "flush":
                producer.flush()
                conn_out.send(("flushed", None))
                continue
            for topic, key, value in msg:
                producer.send(topic, key=key, value=value)
    except Exception:
        conn_out.send(("error", traceback.format_exc()))


class _ProcessProducer:
    """The part of KafkaProducer that Publisher uses (send / flush / close), run in a child process.

    Sends are batched over a pipe in order (one producer, so per-partition order is exactly the order of
    ``send`` calls) and the pipe blocks when the child lags, so memory stays bounded. The producing work
    (kafka-python's per-record Python and its network thread) then runs on another core than the caller.
    """

    BATCH_MESSAGES = 512
    BATCH_BYTES = 4 * 1024 * 1024

    def __init__(self, bootstrap: str, client_id: str, **overrides):
        # a plain subprocess (not multiprocessing's spawn/fork): no re-import of the caller's __main__,
        # no fork of a process that may already run threads
        from_parent, to_child = os.pipe()  # (read end, write end)
        from_child, to_parent = os.pipe()
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE, str(from_parent), str(to_parent)],
            pass_fds=(from_parent, to_parent),
            env=env,
        )
        os.close(from_parent)
        os.close(to_parent)
        self._out = Connection(to_child, readable=False)
        self._in = Connection(from_child, writable=False)
        self._batch: list[tuple[str, bytes | None, bytes]] = []
        self._bytes = 0
        self._closed = False
        self._out.send((bootstrap, client_id, overrides))
        self._expect("ready")

    def _expect(self, what: str) -> None:
        try:
            kind, detail = self._in.recv()
        except (EOFError, OSError) as exc:
            raise RuntimeError(f"producer process died (exit code {self._proc.poll()})") from exc
        if kind != what:
            raise RuntimeError(f"producer process failed:\n{detail}")

    def _ship(self) -> None:
        if not self._batch:
            return
        batch, self._batch, self._bytes = self._batch, [], 0
        try:
            self._out.send(batch)
        except OSError:  # child gone: report why
            self._expect("never")

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None) -> None:
        self._batch.append((topic, key, value))
        self._bytes += len(value) if value is not None else 0
        if len(self._batch) >= self.BATCH_MESSAGES or self._bytes >= self.BATCH_BYTES:
            self._ship()

    def flush(self) -> None:
        self._ship()
        self._out.send("flush")
        self._expect("flushed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._ship()
            self._out.send(None)
            self._expect("closed")
        finally:
            self._out.close()
            self._in.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


_CHILD_CODE = "import sys; from infra.publish import _producer_child; _producer_child(int(sys.argv[1]), int(sys.argv[2]))"


class Publisher:
    """Validating, keyed producer. Use as a context manager; ``counts`` reconcile at the end.

    Parameters
    ----------
    bootstrap : Kafka bootstrap servers.
    stage : name recorded in dead letters (``simulate``, ``import-fit``, ...).
    now_us : clock for the future-timestamp check (defaults to the wall clock).
    producer_process : run the Kafka producer in a child process (same config, same order), so that
        validation and encoding here overlap with producing there; for bulk producers (the simulator).
    """

    def __init__(
        self,
        bootstrap: str,
        stage: str,
        now_us: int | None = None,
        producer_process: bool = False,
        **producer_overrides,
    ):
        self.stage = stage
        self.now_us = now_us
        producer_overrides.setdefault("partitioner", _KeyPartitioner())
        client_id = f"gluteflow-{stage}"
        if producer_process:
            self.producer = _ProcessProducer(bootstrap, client_id, **producer_overrides)
        else:
            self.producer = make_producer(bootstrap, client_id=client_id, **producer_overrides)
        self.counts = PublishCounts()
        self._topics = {cls: topics.topic(key) for cls, key in TOPIC_KEY_BY_TYPE.items()}

    def prepare(self, event: Event, source_file: str | None = None) -> Prepared:
        """Validate and encode ``event`` without sending it: the record :meth:`publish` would send (the
        event, or its dead letter when rejected). For callers that must see a whole batch pass the door
        before any of it is sent (the gateway's all-or-nothing requests)."""
        rejection = check(event, now_us=self.now_us)
        try:
            value = encode(event)
        except Exception as exc:  # unencodable: wrong types for the schema
            rejection = rejection or Rejection("bad_type", f"cannot encode {type(event).__name__}: {exc}")
            value = repr(event).encode()[:65536]
        if rejection is None:
            return Prepared(self._topics[type(event)], event.key, value, None)
        return self.prepare_letter(
            make_dead_letter(rejection, self.stage, value, event, source_file=source_file)
        )

    def prepare_letter(self, letter: DeadLetter) -> Prepared:
        """The record of a dead letter (an input that never became an event, e.g. a corrupt file)."""
        return Prepared(
            self._topics[DeadLetter], letter.key, encode(letter), Rejection(letter.reason, letter.detail)
        )

    def send_prepared(self, records: Sequence[Prepared]) -> list:
        """Send prepared records in order and count them (each once as received, then as accepted or
        dead-lettered). Returns the producer's futures (``None`` items with ``producer_process``)."""
        futures = []
        counts = self.counts
        for rec in records:
            futures.append(self.producer.send(rec.topic, key=rec.key, value=rec.value))
            counts.received += 1
            counts.by_topic[rec.topic] += 1
            counts.bytes_sent += len(rec.value)
            if rec.rejection is None:
                counts.accepted += 1
            else:
                counts.dead_lettered += 1
                counts.by_reason[rec.rejection.reason] += 1
        return futures

    def publish(self, event: Event, source_file: str | None = None) -> Rejection | None:
        """Validate and send ``event``; on rejection send a dead letter instead and return the reason."""
        rec = self.prepare(event, source_file)
        self.send_prepared((rec,))
        return rec.rejection

    def reject(self, letter: DeadLetter) -> None:
        """Dead-letter an input that never became an event (e.g. a corrupt file): counted as received."""
        self.send_prepared((self.prepare_letter(letter),))

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
