"""A small stateful streaming pipeline that the runner tests (tests/test_streaming_runners.py) run on
Prism and Flink: per key, a ``BagStateSpec`` buffers values, ``ReadModifyWriteStateSpec`` s hold the
latest event time and a session counter, and an event-time timer closes the session once the
watermark passes ``latest + GAP_S``. :func:`offline_sessions` is the same rule as plain Python, the
expected answer for any input and final watermark.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import apache_beam as beam
from apache_beam.coders import FloatCoder, StrUtf8Coder, TupleCoder, VarIntCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from pipelines.io.kafka_source import PartitionSpec, ReadKafkaPartitions

GAP_S = 10.0

Event = tuple[str, str, float]  # key, value, event time (s)
Session = tuple[str, int, list[str]]  # key, session number (1, 2, ...), values in event-time order


_BUFFER = BagStateSpec("buffer", TupleCoder([FloatCoder(), StrUtf8Coder()]))  # (event time, value)
_LATEST = ReadModifyWriteStateSpec("latest", FloatCoder())
_CLOSED = ReadModifyWriteStateSpec("closed", VarIntCoder())
_CLOSE = TimerSpec("close", TimeDomain.WATERMARK)
# DoFn parameter markers, made once (they are default values)
_BUFFER_P, _LATEST_P, _CLOSED_P = (beam.DoFn.StateParam(spec) for spec in (_BUFFER, _LATEST, _CLOSED))
_CLOSE_P = beam.DoFn.TimerParam(_CLOSE)


class SessionProbe(beam.DoFn):
    """``(key, value)`` with event times -> one :data:`Session` per quiet gap of ``GAP_S``."""

    def process(
        self,
        kv: tuple[str, str],
        ts=beam.DoFn.TimestampParam,
        buffer=_BUFFER_P,
        latest=_LATEST_P,
        close=_CLOSE_P,
    ):
        buffer.add((float(ts), kv[1]))
        newest = max(latest.read() or float("-inf"), float(ts))
        latest.write(newest)
        close.set(Timestamp.of(newest + GAP_S))

    @on_timer(_CLOSE)
    def on_close(self, key=beam.DoFn.KeyParam, buffer=_BUFFER_P, latest=_LATEST_P, closed=_CLOSED_P):
        number = (closed.read() or 0) + 1
        closed.write(number)
        values = [v for _, v in sorted(buffer.read())]
        buffer.clear()
        latest.clear()
        yield key, number, values


def offline_sessions(phases: Iterable[tuple[Iterable[Event], float]]) -> list[Session]:
    """What :class:`SessionProbe` emits when each phase's events all arrive before the watermark
    advances to that phase's watermark: on each advance, every key whose latest event is more than
    ``GAP_S`` behind the watermark closes its session (numbered per key from 1)."""
    buffers: dict[str, list[tuple[float, str]]] = {}
    closed: dict[str, int] = {}
    out: list[Session] = []
    for events, watermark_s in phases:
        for key, value, t in events:
            buffers.setdefault(key, []).append((t, value))
        for key, items in buffers.items():
            if items and max(items)[0] + GAP_S < watermark_s:
                closed[key] = closed.get(key, 0) + 1
                out.append((key, closed[key], [v for _, v in sorted(items)]))
                items.clear()
    return sorted(out)


class WriteJsonLines(beam.DoFn):
    """Test sink: each bundle's elements as one JSON-lines file in ``directory`` (written whole, then
    renamed, so a reader never sees half a file). Runs in the LOOPBACK harness, i.e. this process."""

    def __init__(self, directory: str):
        self.directory = directory

    def start_bundle(self):
        self._rows: list = []

    def process(self, element):
        self._rows.append(element)

    def finish_bundle(self):
        if not self._rows:
            return
        final = Path(self.directory) / f"{uuid.uuid4().hex}.jsonl"
        tmp = final.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in self._rows))
        os.replace(tmp, final)


def read_json_lines(directory: Path) -> list[Session]:
    rows = [json.loads(line) for f in directory.glob("*.jsonl") for line in f.read_text().splitlines()]
    return sorted((k, n, list(vs)) for k, n, vs in rows)


def kafka_sessions(p: beam.Pipeline, bootstrap: str, topic: str, partitions: list[int], out_dir: str):
    """Unbounded read of ``topic`` with the project's splittable DoFn -> sessions -> JSON lines.

    Each record's event time is its Kafka timestamp; the watermark is the SDF's estimator's."""
    specs = [PartitionSpec(bootstrap, topic, part, 0, None) for part in partitions]
    return (
        p
        | "Partitions" >> beam.Create(specs)
        | "ReadKafka" >> ReadKafkaPartitions(poll_interval_s=0.2)
        | "KeyByRecordKey"
        >> beam.Map(
            lambda m: beam.window.TimestampedValue(
                (m.key.decode(), m.value.decode()), m.timestamp_ms / 1000.0
            )
        ).with_output_types(tuple[str, str])
        | "Sessions" >> beam.ParDo(SessionProbe())
        | "Write" >> beam.ParDo(WriteJsonLines(out_dir))
    )
