"""Reading Kafka in Beam without Java: a splittable DoFn over kafka-python.

Design
------
* One input element per topic-partition: :class:`PartitionSpec` ``(bootstrap, topic, partition, start,
  stop)``. The **restriction** is an :class:`~apache_beam.io.restriction_trackers.OffsetRange` over Kafka
  offsets ``[start, stop)`` tracked by an ``OffsetRestrictionTracker``: every record is claimed by its
  offset before it is emitted, so a runner can split a partition's range (initial split into chunks of
  ``split_offsets``, dynamic splits, checkpoints) and every offset is emitted by exactly one
  restriction.
* **No consumer group**: partitions are assigned explicitly (``consumer.assign``) and positioned with
  ``seek``; the caller owns the offsets (the micro-batch driver stores them in its checkpoint).
* **One element per poll**: the DoFn emits the records of one poll (up to ``max_poll_records``) as one
  list of plain tuples in :class:`KafkaMessage` field order (Beam spends ~10-20 us per element and
  stage, and its coder encodes plain tuples natively but pickled NamedTuples one by one).
  :class:`ReadKafkaPartitions` yields :class:`KafkaMessage` s unless ``as_lists=True``.
* **Event time**: a list's timestamp is ``timestamp_fn`` of its last record (default: the Kafka record
  timestamp, i.e. producer create time in ms); the watermark estimator is a
  :class:`MonotonicWatermarkEstimator` advanced by the largest record timestamp of each poll.
* **Bounded vs unbounded**: with ``stop`` set the read is bounded (the micro-batch driver). With
  ``stop=None`` the restriction is ``[start, 2**63-1)``; when a poll returns nothing the DoFn calls
  ``tracker.defer_remainder(poll_interval_s)`` and returns, so a streaming runner (Prism, Flink,
  Dataflow) checkpoints and re-invokes it: the same DoFn serves an unbounded read there (the Python
  SDK has no use for a yielded ``ProcessContinuation``: it was emitted as an element). Measured on the local FnApiRunner: an
  unbounded read never fires stages after a GroupByKey, so locally the job runs as a sequence of
  bounded pipelines (jobs/stream_driver.py).
* **End offsets**: Tansu under-reports ListOffsets(LATEST), so bounded stops come from the fetch high
  watermark (:func:`infra.kafka_io.end_offsets`).
* ``--kafka-reader=java`` selects Beam's cross-language ``ReadFromKafka`` instead (needs a Java expansion
  service; not available offline here), read with metadata so messages keep their coordinates; it
  reads the topics from their start to ``max_num_records``, not the driver's offset ranges, so the
  micro-batch driver cannot use it (a streaming runner can).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import MonotonicWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Duration, Timestamp

from infra.kafka_io import make_consumer

UNBOUNDED_STOP = sys.maxsize
#: a partition read to its end holds the record-time watermark this far behind the clock: producers'
#: clocks and messages still in flight (the micro-batch executor uses the same margin)
CAUGHT_UP_WATERMARK_LAG_S = 10.0


class PartitionSpec(NamedTuple):
    """What to read: ``topic[partition]`` offsets ``[start, stop)``; ``stop=None`` reads forever."""

    bootstrap: str
    topic: str
    partition: int
    start: int
    stop: int | None
    split_offsets: int = 0  # initial split size (0 = one restriction for the whole range)


class KafkaMessage(NamedTuple):
    """One Kafka record with its coordinates (the source of dead-letter ids and offsets)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


def kafka_timestamp_s(msg: KafkaMessage) -> float:
    """Default event time: the Kafka record timestamp (seconds)."""
    return msg.timestamp_ms / 1000.0


class _OffsetRestrictionProvider(RestrictionProvider):
    def initial_restriction(self, element: PartitionSpec) -> OffsetRange:
        return OffsetRange(element.start, UNBOUNDED_STOP if element.stop is None else element.stop)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def split(self, element: PartitionSpec, restriction: OffsetRange):
        if element.stop is None or element.split_offsets <= 0:
            yield restriction
            return
        yield from restriction.split(element.split_offsets, max(1, element.split_offsets // 4))

    def restriction_size(self, element: PartitionSpec, restriction: OffsetRange) -> int:
        return restriction.size()


class _WatermarkProvider(WatermarkEstimatorProvider):
    def initial_estimator_state(self, element, restriction):
        # not None (Beam's default): MonotonicWatermarkEstimator then compares a Timestamp with None when
        # a runner asks for the watermark of a deferred restriction (every idle poll of an unbounded read)
        return MIN_TIMESTAMP

    def create_watermark_estimator(self, estimator_state):
        return MonotonicWatermarkEstimator(estimator_state)


_RESTRICTION_PARAM = beam.DoFn.RestrictionParam(_OffsetRestrictionProvider())
_WATERMARK_PARAM = beam.DoFn.WatermarkEstimatorParam(_WatermarkProvider())


class ReadKafkaPartitionsFn(beam.DoFn):
    """Splittable DoFn: ``PartitionSpec`` -> timestamped lists (one per poll) of :class:`KafkaMessage`
    field tuples covering its offset range.

    Parameters
    ----------
    timestamp_fn : ``KafkaMessage -> event time in seconds`` (default: Kafka record timestamp).
    poll_interval_s : resume delay of an unbounded read when the partition has no new records.
    """

    def __init__(
        self,
        timestamp_fn: Callable[[KafkaMessage], float] = kafka_timestamp_s,
        poll_interval_s: float = 1.0,
    ):
        super().__init__()
        self.timestamp_fn = timestamp_fn
        self.poll_interval_s = poll_interval_s
        self._consumers: dict[str, object] = {}
        self.records = beam.metrics.Metrics.counter("kafka_source", "records_read")
        self.bytes = beam.metrics.Metrics.counter("kafka_source", "bytes_read")

    def _consumer(self, bootstrap: str):
        if bootstrap not in self._consumers:
            self._consumers[bootstrap] = make_consumer(bootstrap, client_id="gluteflow-stream-sdf")
        return self._consumers[bootstrap]

    def teardown(self) -> None:
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers.clear()

    def process(
        self,
        element: PartitionSpec,
        tracker=_RESTRICTION_PARAM,
        watermark=_WATERMARK_PARAM,
    ) -> Iterator:
        from kafka import TopicPartition
        from kafka.errors import IllegalStateError

        rng: OffsetRange = tracker.current_restriction()
        if rng.start >= rng.stop:
            return
        consumer = self._consumer(element.bootstrap)
        tp = TopicPartition(element.topic, element.partition)
        consumer.assign([tp])
        consumer.seek(tp, rng.start)
        bounded = element.stop is not None
        idle = 0
        while True:
            try:
                batch = consumer.poll(timeout_ms=200 if bounded else int(self.poll_interval_s * 1000))
            except IllegalStateError:  # teardown closed the consumer: the worker is shutting down
                tracker.defer_remainder(Duration.of(self.poll_interval_s))
                return
            records = batch.get(tp, [])
            if not records:
                if not bounded:  # hand the rest back to the runner, to be resumed after the interval
                    caught_up = consumer.highwater(tp) is not None and consumer.position(
                        tp
                    ) >= consumer.highwater(tp)
                    if caught_up:  # an idle partition must not hold the watermark back forever
                        watermark.observe_timestamp(Timestamp.now() - CAUGHT_UP_WATERMARK_LAG_S)
                    tracker.defer_remainder(Duration.of(self.poll_interval_s))
                    return
                idle += 1
                if idle > 150:  # 30 s without progress inside a range the broker said exists
                    raise RuntimeError(
                        f"{element.topic}[{element.partition}] stalled at {tracker.current_restriction()}"
                    )
                continue
            idle = 0
            out: list[tuple] = []
            claimed_all = True
            for rec in records:
                if not tracker.try_claim(rec.offset):
                    claimed_all = False
                    break
                out.append((element.topic, element.partition, rec.offset, rec.key, rec.value, rec.timestamp))
            if out:  # counters and the watermark once per poll (a metrics update costs ~10 us)
                self.records.inc(len(out))
                self.bytes.inc(sum(len(m[4] or b"") for m in out))
                times = [self.timestamp_fn(KafkaMessage._make(m)) for m in out]
                watermark.observe_timestamp(Timestamp.of(max(times)))
                yield beam.window.TimestampedValue(out, Timestamp.of(times[-1]))
            if not claimed_all:
                return
            # compacted topics skip offsets: a bounded range is done once the position passes its stop
            stop = tracker.current_restriction().stop
            if bounded and consumer.position(tp) >= stop:
                if records[-1].offset < stop - 1:
                    tracker.try_claim(stop - 1)  # mark the (absent) tail offsets as done
                return


class ReadKafkaPartitions(beam.PTransform):
    """``PCollection[PartitionSpec]`` -> ``PCollection[KafkaMessage]`` via the splittable DoFn
    (``as_lists=True``: one list of ``KafkaMessage`` field tuples per poll)."""

    def __init__(self, timestamp_fn=kafka_timestamp_s, poll_interval_s: float = 1.0, as_lists: bool = False):
        super().__init__()
        self.timestamp_fn = timestamp_fn
        self.poll_interval_s = poll_interval_s
        self.as_lists = as_lists

    def expand(self, specs):
        lists = specs | "ReadPartitionRanges" >> beam.ParDo(
            ReadKafkaPartitionsFn(self.timestamp_fn, self.poll_interval_s)
        )
        return (
            lists
            if self.as_lists
            else lists | "Records" >> beam.FlatMap(lambda ms: map(KafkaMessage._make, ms))
        )


def read_java(pipeline: beam.Pipeline, bootstrap: str, topics: list[str], max_num_records: int | None = None):
    """Beam's cross-language ``ReadFromKafka`` (``--kafka-reader=java``): needs Java and an expansion service.

    Emits one-record lists of :class:`KafkaMessage` field tuples (the python reader's shape), with
    topic, partition and offset from ``with_metadata=True``. Not runnable on this machine (no
    expansion jar offline).
    """
    from apache_beam.io.kafka import ReadFromKafka

    return (
        pipeline
        | "ReadFromKafkaJava"
        >> ReadFromKafka(
            consumer_config={"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest"},
            topics=topics,
            with_metadata=True,
            max_num_records=max_num_records,
        )
        | "JavaRecordToMessage"
        >> beam.Map(lambda r: [(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp)])
    )
