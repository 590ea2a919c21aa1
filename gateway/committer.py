"""Group commit: requests' prepared records go to Kafka together, one flush per group.

Each request hands over all its records at once (already validated and encoded by the Publisher), in a
bounded queue. One thread takes every queued request (up to ``group_bytes``), sends their records through
the project's :class:`~infra.publish.Publisher`, flushes the producer once and resolves each request's
future: done when every one of its records was acknowledged, failed otherwise.

What this guarantees, exactly:

* Nothing of a request is sent before all of it passed validation and encoding (the caller prepares first).
* A request that timed out while still queued is never sent (its future is cancelled before the group
  starts: ``Future.set_running_or_notify_cancel``).
* A group is sent as one produce request: the producer's linger is long and its batch and request sizes
  exceed ``group_bytes``, so records leave only at the group's flush, one batch per partition, all batches
  in one request to the (single-node) broker. A broker that is paused or slow therefore holds the whole
  group or none of it; Kafka writes each partition's batch atomically.
* What it cannot guarantee without transactions read by ``read_committed`` consumers (the stream job reads
  uncommitted): a broker that dies mid-write, or answers some partitions and not others, can keep part of
  a group. And a request answered 503 because its group was still in flight at the deadline may still be
  written in full when the broker resumes. Both are at-least-once outcomes that a retry turns into
  duplicates, which the per-device sequence numbers make visible and the stream job drops.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from infra.publish import Prepared, Publisher

log = logging.getLogger("gluteflow.gateway")


class QueueFull(RuntimeError):
    """More requests wait for Kafka than the gateway buffers: answer 503 now."""


class PublishFailed(RuntimeError):
    """Kafka did not acknowledge every record of a request."""


@dataclass
class _Item:
    records: Sequence[Prepared]
    size: int
    future: Future = field(default_factory=Future)


class GroupCommitter:
    """A single thread committing queued requests to Kafka in groups (see module docstring)."""

    def __init__(
        self,
        publisher: Publisher,
        max_queued: int = 256,
        group_bytes: int = 4 * 1024 * 1024,
        flush_timeout_s: float = 30.0,
        on_send_errors: Callable[[int], object] = lambda n: None,
    ):
        self.publisher = publisher
        self.group_bytes = group_bytes
        self.flush_timeout_s = flush_timeout_s
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_queued)
        self.in_flight = 0  # requests of the group being sent now
        self.last_ok_at: float | None = None
        self.last_error: str | None = None
        self._on_send_errors = on_send_errors  # records Kafka refused or never acknowledged
        self._thread = threading.Thread(target=self._run, name="gateway-committer", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def submit(self, records: Sequence[Prepared]) -> Future:
        """Queue one request's records; the future resolves to the number sent. Raises QueueFull."""
        item = _Item(records, sum(len(r.value) for r in records))
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            raise QueueFull(f"{self._queue.maxsize} requests already wait for Kafka") from None
        return item.future

    def close(self, timeout_s: float = 30.0) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _take_group(self, first: _Item) -> tuple[list[_Item], bool]:
        group, size, stop = [first], first.size, False
        while size < self.group_bytes:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                stop = True
                break
            group.append(nxt)
            size += nxt.size
        return group, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            group, stop = self._take_group(first)
            live = [it for it in group if it.future.set_running_or_notify_cancel()]
            if live:
                self.in_flight = len(live)
                try:
                    self._commit(live)
                finally:
                    self.in_flight = 0

    def _commit(self, items: list[_Item]) -> None:
        try:
            sent = [self.publisher.send_prepared(it.records) for it in items]
            self.publisher.producer.flush(timeout=self.flush_timeout_s)
        except Exception as exc:  # KafkaTimeoutError (no metadata, flush deadline), a closed producer
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("kafka send failed for a group of %d requests: %s", len(items), self.last_error)
            self._on_send_errors(sum(len(it.records) for it in items))
            for it in items:
                it.future.set_exception(PublishFailed(self.last_error))
            return
        for it, futures in zip(items, sent, strict=True):
            failed = [f.exception for f in futures if f.failed()]
            if failed:
                self._on_send_errors(len(failed))
                self.last_error = f"{type(failed[0]).__name__}: {failed[0]}"
                it.future.set_exception(
                    PublishFailed(f"{len(failed)} of {len(futures)} records: {self.last_error}")
                )
            else:
                it.future.set_result(len(futures))
        self.last_ok_at = time.monotonic()
