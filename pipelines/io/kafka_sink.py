"""The stream job's outputs as Kafka messages: strides and its own dead letters (Avro, keyed by runner).

One encoding for both executions: the micro-batch executor publishes its committed lake files with
:func:`topic_messages`, a streaming runner sends its output tables with :class:`PublishToTopics`
(at-least-once either way: ``stride_id`` / ``dead_letter_id`` are the consumers' idempotency keys).
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import pyarrow as pa

from infra import topics
from schemas.codec import encode_record

_DEAD_LETTER_KEYS = (
    "runner_id",
    "device_id",
    "session_id",
    "seq",
    "source_topic",
    "source_partition",
    "source_offset",
    "source_file",
)


def _records(table: pa.Table) -> list[dict]:
    """Lake rows -> Avro records (timestamps as int microseconds, dates as days)."""
    cols = {}
    for name in table.column_names:
        col = table[name]
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        elif pa.types.is_date32(col.type):
            col = col.cast(pa.int32())
        cols[name] = col
    return pa.table(cols).to_pylist()


def topic_messages(table_name: str, table: pa.Table) -> Iterator[tuple[str, bytes, bytes]]:
    """``(topic, key, value)`` of a strides table's rows, or of a dead-letter table's rows written by
    the stream job (letters from other stages are already on the topic)."""
    if table_name == "strides":
        for rec in _records(table):
            rec["date"] = (rec["ic_time"] // 86_400_000_000) if rec.get("ic_time") is not None else 0
            yield topics.topic("strides"), rec["runner_id"].encode(), encode_record("stride", rec)
    elif table_name == "dead_letters":
        for rec in _records(table):
            if rec["stage"] != "stream":
                continue
            letter = {
                "reason": rec["reason"],
                "detail": rec["detail"],
                "stage": rec["stage"],
                "original": rec["original"],
                "dead_lettered_at_us": rec["dead_lettered_at"],
                **{k: rec[k] for k in _DEAD_LETTER_KEYS},
            }
            key = (rec["runner_id"] or rec["reason"]).encode()
            yield topics.topic("dead_letters"), key, encode_record("dead_letter", letter)


class _PublishFn(beam.DoFn):
    def __init__(self, bootstrap: str, table_name: str, schema: pa.Schema):
        self.bootstrap = bootstrap
        self.table_name = table_name
        self.schema = schema

    def setup(self):
        from infra.kafka_io import make_producer

        self.producer = make_producer(self.bootstrap, client_id="gluteflow-stream")

    def process(self, chunk):
        table = chunk if isinstance(chunk, pa.Table) else pa.Table.from_pylist(chunk, schema=self.schema)
        for topic, key, value in topic_messages(self.table_name, table):
            self.producer.send(topic, key=key, value=value)

    def finish_bundle(self):
        self.producer.flush()  # a bundle is done only once its messages are acknowledged

    def teardown(self):
        self.producer.close()


class PublishToTopics(beam.PTransform):
    """Arrow tables / row lists of ``table_name`` -> their Kafka messages (streaming runners)."""

    def __init__(self, bootstrap: str, table_name: str, schema: pa.Schema):
        super().__init__()
        self.fn = _PublishFn(bootstrap, table_name, schema)

    def expand(self, pcoll):
        return pcoll | "Send" >> beam.ParDo(self.fn)
