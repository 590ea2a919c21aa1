"""Beam transforms of the stride-feature stream job: one PTransform per concept, every step labelled.

    PartitionSpecs ─ ReadKafka (SDF) ─ DecodeValidate ─┬─ ok events ── KeyByRunnerSession ─┐
                                                       ├─ profiles ─ LatestProfile ─ runners│
                                                       ├─ upstream dead letters             │
                                                       └─ dead letters (decode/validate)    │
    carry-over state (previous batch) ────────────────────────────────────── CoGroupByKey ──┴─
         ─ ProcessSessions (order, dedup, late, gaps, strides, features) ─┬─ strides
                                                                          ├─ watch records, session markers
                                                                          ├─ late -> dead letters
                                                                          └─ new carry-over state

DoFns are thin: the event-time logic is :mod:`pipelines.stream.sessionize` and the science is numpy.
Errors are tagged outputs (``dead``), never exceptions that fail the batch.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

import apache_beam as beam
from apache_beam import pvalue

from infra.publish import make_dead_letter
from pipelines.io.kafka_source import KafkaMessage, PartitionSpec, ReadKafkaPartitions
from pipelines.stream.sessionize import INF, Item, SessionState, StreamParams, process_session
from schemas.codec import DecodeError, decode
from schemas.events import DeadLetter, RunnerProfile, SensorBlock, SessionMarker, WatchRecord
from schemas.validate import Rejection, check

NS = "stream"
STAGE = "stream"
KIND_OF = {SensorBlock: "sensor_block", WatchRecord: "watch_record", SessionMarker: "session_marker"}


def dead_letter_row(letter: DeadLetter) -> dict:
    """Row of the DEAD_LETTERS table with a deterministic id (source coordinates, else content hash)."""
    import datetime as dt

    if letter.source_topic is not None and letter.source_offset is not None:
        dl_id = f"{letter.source_topic}:{letter.source_partition}:{letter.source_offset}"
    else:
        h = hashlib.sha1(letter.original + letter.reason.encode() + (letter.source_file or "").encode())
        dl_id = f"sha1:{h.hexdigest()[:20]}"
    return {
        "dead_letter_id": dl_id,
        "reason": letter.reason,
        "detail": letter.detail,
        "stage": letter.stage,
        "runner_id": letter.runner_id,
        "device_id": letter.device_id,
        "session_id": letter.session_id,
        "seq": letter.seq,
        "source_topic": letter.source_topic,
        "source_partition": letter.source_partition,
        "source_offset": letter.source_offset,
        "source_file": letter.source_file,
        "original": letter.original,
        "dead_lettered_at": letter.dead_lettered_at_us,
        "date": (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=letter.dead_lettered_at_us)).date(),
    }


class DecodeValidateFn(beam.DoFn):
    """bytes -> (runner, session) keyed Items | profiles | upstream dead letters | dead letters (tagged)."""

    def __init__(self, now_us: int | None = None):
        self.now_us = now_us
        self.blocks_in = beam.metrics.Metrics.counter(NS, "blocks_in")
        self.messages_in = beam.metrics.Metrics.counter(NS, "messages_in")

    def process(self, msg: KafkaMessage):
        self.messages_in.inc()
        try:
            event = decode(msg.value)
        except DecodeError as exc:
            yield pvalue.TaggedOutput("dead", self._dead(Rejection(exc.reason, exc.detail), msg, None))
            return
        bad = check(event, now_us=self.now_us)
        if bad is not None:
            yield pvalue.TaggedOutput("dead", self._dead(bad, msg, event))
            return
        if isinstance(event, RunnerProfile):
            beam.metrics.Metrics.counter(NS, "profiles_accepted").inc()
            yield pvalue.TaggedOutput("profiles", event)
            return
        if isinstance(event, DeadLetter):
            if event.stage == STAGE:  # our own letters are already in the lake
                beam.metrics.Metrics.counter(NS, "own_dead_letters_skipped").inc()
                return
            beam.metrics.Metrics.counter(NS, "upstream_dead_letters_archived").inc()
            yield pvalue.TaggedOutput("upstream_dead", dead_letter_row(event))
            return
        kind = KIND_OF[type(event)]
        if kind == "sensor_block":
            self.blocks_in.inc()
        raw = msg.value if kind == "sensor_block" else None
        item = Item(kind, msg.partition, msg.offset, event, raw, msg.topic, msg.timestamp_ms * 1000)
        # explicit pickle: Beam's FastPrimitivesCoder mis-decoded large dataclass elements (tag 30)
        yield ((event.runner_id, event.session_id), pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))

    def _dead(self, rejection: Rejection, msg: KafkaMessage, event: Any) -> dict:
        beam.metrics.Metrics.counter(NS, f"dead_letters_{rejection.reason}").inc()
        letter = make_dead_letter(
            rejection,
            STAGE,
            msg.value,
            event,
            source_topic=msg.topic,
            source_partition=msg.partition,
            source_offset=msg.offset,
            now_us=msg.timestamp_ms * 1000,  # deterministic: a rerun writes the same row
        )
        return dead_letter_row(letter)


class ProcessSessionsFn(beam.DoFn):
    """CoGroupByKey result -> strides | watch | sessions | dead | state, via ``process_session``."""

    def __init__(self, params: StreamParams, now_us: int | None = None):
        self.params = params
        self.now_us = now_us

    def process(self, element, partition_wm: dict[int, int]):
        (runner_id, session_id), groups = element
        blobs = list(groups["state"])
        items: list[Item] = [pickle.loads(b) for b in groups["items"]]
        state = SessionState.from_bytes(blobs[0]) if blobs else SessionState(runner_id, session_id)
        parts = {it.partition for it in items} | set(getattr(state, "partitions", set()))
        state.partitions = parts  # type: ignore[attr-defined]
        wm = max([partition_wm.get(p, -INF) for p in parts] + [-INF])
        out = process_session(state, items, wm, self.params)
        for name, n in out.counts.items():
            beam.metrics.Metrics.counter(NS, name).inc(n)
        for row in out.strides:
            yield pvalue.TaggedOutput("strides", row)
        for row in out.watch:
            yield pvalue.TaggedOutput("watch", row)
        for row in out.sessions:
            yield pvalue.TaggedOutput("sessions", row)
        for it in out.late:
            beam.metrics.Metrics.counter(NS, "dead_letters_late").inc()
            ev = it.event
            detail = f"block {ev.start_time_us} us arrived after the allowed lateness of its unit"
            letter = make_dead_letter(
                Rejection("late", detail),
                STAGE,
                it.raw or b"",
                ev,
                source_topic=it.topic,
                source_partition=it.partition,
                source_offset=it.offset,
                now_us=it.kafka_ts_us,
            )
            yield pvalue.TaggedOutput("dead", dead_letter_row(letter))
        retention = int(self.params.closed_retention_s * 1e6)
        expired = state.closed and state.closed_at_us is not None and wm > state.closed_at_us + retention
        if not expired:  # sessions closed long ago are forgotten
            yield pvalue.TaggedOutput("state", (runner_id, session_id, state.to_bytes()))


def _block_end(blob: bytes):
    item: Item = pickle.loads(blob)
    if item.kind == "sensor_block":
        yield item.partition, item.event.end_time_us


class PartitionWatermarks(beam.PTransform):
    """Per Kafka partition: max sensor-block end time so far (previous batches + this one) - lateness."""

    def __init__(self, previous: dict[int, int], lateness_us: int):
        super().__init__()
        self.previous = previous
        self.lateness_us = lateness_us

    def expand(self, keyed_items):
        prev = [(int(p), int(v)) for p, v in self.previous.items()]
        ends = (
            keyed_items
            | "PartitionBlockEnd" >> beam.FlatMap(lambda kv: _block_end(kv[1]))
        )
        return (
            (ends, keyed_items.pipeline | "PreviousMaxima" >> beam.Create(prev))
            | "MergeMaxima" >> beam.Flatten()
            | "MaxPerPartition" >> beam.CombinePerKey(max)
        )


class LatestProfiles(beam.PTransform):
    """Runner profiles (this batch + the current lake table) -> one RUNNERS row per runner (latest)."""

    def __init__(self, existing_rows: list[dict]):
        super().__init__()
        self.existing_rows = existing_rows

    def expand(self, profiles):
        def row(p: RunnerProfile) -> dict:
            return {
                "runner_id": p.runner_id,
                "cohort": p.cohort,
                "sex": p.sex,
                "birth_year_band": p.birth_year_band,
                "time_zone": p.time_zone,
                "resting_hr_bpm": p.resting_hr_bpm,
                "max_hr_bpm": p.max_hr_bpm,
                "updated_at": p.updated_at_us,
                "profile_seq": p.seq,
            }

        existing = profiles.pipeline | "ExistingRunners" >> beam.Create(self.existing_rows)
        return (
            (profiles | "ProfileRow" >> beam.Map(row), existing)
            | "AllProfiles" >> beam.Flatten()
            | "ByRunner" >> beam.Map(lambda r: (r["runner_id"], r))
            | "Latest"
            >> beam.CombinePerKey(lambda rows: max(rows, key=lambda r: (r["updated_at"], r["profile_seq"])))
            | "Values" >> beam.Values()
        )


class StrideFeatureBatch(beam.PTransform):
    """The whole bounded batch: Kafka ranges + carry-over state -> tagged output PCollections."""

    def __init__(
        self,
        specs: list[PartitionSpec],
        state_rows: list[tuple[str, str, bytes]],
        previous_partition_max: dict[int, int],
        existing_runners: list[dict],
        params: StreamParams,
        now_us: int | None = None,
        reader: str = "python",
    ):
        super().__init__()
        self.reader = reader
        self.specs = specs
        self.state_rows = state_rows
        self.previous_partition_max = previous_partition_max
        self.existing_runners = existing_runners
        self.params = params
        self.now_us = now_us

    def expand(self, pbegin):
        p = pbegin.pipeline if hasattr(pbegin, "pipeline") else pbegin
        lateness = int(self.params.allowed_lateness_s * 1e6)
        if self.reader == "java":  # cross-language ReadFromKafka (needs Java + expansion service)
            from pipelines.io.kafka_source import read_java

            msgs = read_java(
                p,
                self.specs[0].bootstrap,
                sorted({s.topic for s in self.specs}),
                max_num_records=sum(s.stop - s.start for s in self.specs),
            )
        else:
            msgs = p | "PartitionRanges" >> beam.Create(self.specs) | "ReadKafka" >> ReadKafkaPartitions()
        decoded = msgs | "DecodeValidate" >> beam.ParDo(DecodeValidateFn(self.now_us)).with_outputs(
            "dead", "profiles", "upstream_dead", main="items"
        )
        maxima = decoded.items | "PartitionWatermarks" >> PartitionWatermarks(
            self.previous_partition_max, lateness
        )
        wm = maxima | "MinusLateness" >> beam.MapTuple(lambda part, v: (part, v - lateness))
        state = p | "CarryOverState" >> beam.Create([((r, s), blob) for r, s, blob in self.state_rows])
        processed = (
            {"items": decoded.items, "state": state}
            | "KeyByRunnerSession" >> beam.CoGroupByKey()
            | "ProcessSessions"
            >> beam.ParDo(ProcessSessionsFn(self.params, self.now_us), pvalue.AsDict(wm)).with_outputs(
                "strides", "watch", "sessions", "dead", "state"
            )
        )
        dead = (decoded.dead, processed.dead, decoded.upstream_dead) | "AllDeadLetters" >> beam.Flatten()
        runners = decoded.profiles | "LatestProfiles" >> LatestProfiles(self.existing_runners)
        return {
            "strides": processed.strides,
            "watch_records": processed.watch,
            "sessions": processed.sessions,
            "dead_letters": dead,
            "runners": runners,
            "state": processed.state,
            "partition_max": maxima,
        }
