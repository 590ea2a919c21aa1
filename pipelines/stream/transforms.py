"""Beam transforms of the stride-feature stream job: one PTransform per concept, every step labelled.

    PartitionSpecs ─ ReadKafka (SDF: one list of records per poll) ─ DecodeValidate
        ├─ raw messages per (runner, session) (blocks by header) ───────────┐
        ├─ block ends ─ PartitionWatermarks, PartitionEndsIndex (side inputs) │
        ├─ profiles ─ LatestProfiles ─ runners                                │
        ├─ upstream dead letters                                              │
        └─ dead letters (bad header, other kinds' decode/validate)            │
    carry-over state (previous batch, keys of this shard's partitions) ─ CoGroupByKey
        ─ ProcessSessions (decode + validate blocks, order, dedup, late, gaps, quiet rule, strides, features)
            ├─ strides, watch records, session markers (Arrow tables)
            ├─ rejected blocks, late -> dead letters
            └─ new carry-over state

DoFns are thin: the event-time logic is :mod:`pipelines.stream.sessionize` and the science is numpy.
Errors are tagged outputs (``dead``), never exceptions that fail the batch.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam import pvalue
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from infra.publish import make_dead_letter, topic_kinds
from pipelines.io.kafka_source import KafkaMessage, ReadKafkaPartitions
from pipelines.stream.manifest import ShardManifest
from pipelines.stream.own_letters import VerifyOwnDeadLetters
from pipelines.stream.sessionize import INF, Item, PartitionEnds, SessionState, StreamParams, process_session
from schemas.block_reader import peek_block_header, read_block
from schemas.codec import DecodeError, decode
from schemas.events import DeadLetter, RunnerProfile, SensorBlock, SessionMarker, WatchRecord
from schemas.tables import SESSIONS, STRIDES, WATCH_RECORDS
from schemas.validate import Rejection, check, check_block_bodies, check_block_header, check_envelope

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


def _dead_row(
    rejection: Rejection,
    raw: bytes | None,
    event: Any,
    topic: str,
    partition: int,
    offset: int,
    kafka_ts_us: int,
) -> dict:
    """DEAD_LETTERS row of one rejected message (counted as ``dead_letters_<reason>``); the Kafka record
    time stands in for "now", so a rerun writes the same row."""
    beam.metrics.Metrics.counter(NS, f"dead_letters_{rejection.reason}").inc()
    letter = make_dead_letter(
        rejection,
        STAGE,
        raw if raw is not None else b"",  # a tombstone has no bytes
        event,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        now_us=kafka_ts_us,
    )
    return dead_letter_row(letter)


def decode_checked_blocks(
    raws: list[bytes],
) -> list[tuple[SensorBlock | None, Rejection | None]]:
    """Decode sensor blocks whose headers passed :func:`check_block_header` (fast reader, else the
    general decoder) and check their channels all at once (:func:`check_block_bodies`): per block
    ``(block, None)`` when it is acceptable, ``(block or None, rejection)`` otherwise."""
    decoded: list[tuple[SensorBlock | None, Rejection | None]] = []
    blocks: list[SensorBlock] = []
    samples: list = []
    where: list[int] = []
    for raw in raws:
        fast = read_block(raw)
        if fast is not None:
            event, stacked = fast.block, fast.samples
        else:  # the header said sensor block: the general decoder returns one or names the fault
            try:
                event, stacked = decode(raw), None
            except DecodeError as exc:
                decoded.append((None, Rejection(exc.reason, exc.detail)))
                continue
        where.append(len(decoded))
        decoded.append((event, None))
        blocks.append(event)
        samples.append(stacked)
    for i, bad in zip(where, check_block_bodies(blocks, samples), strict=True):
        if bad is not None:
            decoded[i] = (decoded[i][0], bad)
    return decoded


class DecodeValidateFn(beam.DoFn):
    """Kafka record lists -> per bundle, one ``((runner, session), pickled list of entries)`` per key |
    per partition the ``(offset, block end us)`` pairs of its sensor blocks (``ends``) | profiles |
    upstream dead letters | dead letters (tagged, one-row lists).

    A sensor block (most messages) is routed on its **header** alone (:func:`peek_block_header` and
    :func:`check_block_header`, ~5 us): its samples are decoded and checked once, after the shuffle,
    in ProcessSessions, which dead-letters the block if they fail. Decoding it here as well cost a
    second full decode per block (~25-50 us, the fast reader), because only the raw message crosses
    the shuffle (shipping decoded samples as well doubled the bytes the shuffle moved). Other kinds
    are decoded and validated in full here. A block whose header does not pass takes the full path,
    so its dead letter names the same reason as before.

    Items are batched per key within a bundle (a bundle is a Kafka offset range): one element per key
    instead of one per message keeps Beam's per-element cost (coder, GBK, ~20 us each) out of the hot
    path. An entry is ``(kind, partition, offset, raw bytes, topic, kafka time us)``. The list is
    pickled explicitly: Beam's FastPrimitivesCoder mis-decoded large dataclass elements (unknown type
    tag 30).
    """

    def __init__(self, now_us: int | None = None):
        self.now_us = now_us
        self.topic_kinds = topic_kinds()
        self.blocks_in = beam.metrics.Metrics.counter(NS, "blocks_in")
        self.messages_in = beam.metrics.Metrics.counter(NS, "messages_in")

    def start_bundle(self):
        self._groups: dict[tuple[str, str], list[tuple]] = {}
        self._ends: dict[int, list[tuple[int, int]]] = {}  # partition -> [(offset, block end us)]
        self._ts: dict[tuple[str, str], int] = {}
        self._n_messages = self._n_blocks = 0  # counted per bundle (a metrics update costs ~10 us)

    def process(self, msgs: list[tuple]):
        for fields in msgs:
            yield from self._one(KafkaMessage._make(fields))

    def _group(self, key: tuple[str, str], kind: str, msg: KafkaMessage) -> None:
        entry = (kind, msg.partition, msg.offset, msg.value, msg.topic, msg.timestamp_ms * 1000)
        self._groups.setdefault(key, []).append(entry)
        self._ts[key] = max(self._ts.get(key, -INF), msg.timestamp_ms)

    def _block(self, msg: KafkaMessage, key: tuple[str, str], end_time_us: int) -> None:
        self._n_blocks += 1
        self._ends.setdefault(msg.partition, []).append((msg.offset, end_time_us))
        self._group(key, "sensor_block", msg)

    def _envelope(self, msg: KafkaMessage, kind: str, payload_key: bytes) -> Rejection | None:
        """Issue 13: the message's kind is its topic's, its key the payload's runner id."""
        return check_envelope(msg.topic, self.topic_kinds.get(msg.topic), kind, msg.key, payload_key)

    def _one(self, msg: KafkaMessage):
        self._n_messages += 1
        # "now" for the future-time check: when the message reached Kafka (a rerun decides the same)
        now_us = self.now_us if self.now_us is not None else msg.timestamp_ms * 1000
        header = peek_block_header(msg.value)
        if header is not None and check_block_header(header, now_us=now_us) is None:
            bad = self._envelope(msg, "sensor_block", header.runner_id.encode())
            if bad is not None:
                yield pvalue.TaggedOutput("dead", [self._dead(bad, msg, header)])
                return
            self._block(msg, (header.runner_id, header.session_id), header.end_time_us)
            return
        try:
            event = decode(msg.value)
        except DecodeError as exc:
            yield pvalue.TaggedOutput("dead", [self._dead(Rejection(exc.reason, exc.detail), msg, None)])
            return
        bad = check(event, now_us=now_us) or self._envelope(msg, event.KIND, event.key)
        if bad is not None:
            yield pvalue.TaggedOutput("dead", [self._dead(bad, msg, event)])
            return
        if isinstance(event, RunnerProfile):
            beam.metrics.Metrics.counter(NS, "profiles_accepted").inc()
            yield pvalue.TaggedOutput("profiles", event)
            return
        if isinstance(event, DeadLetter):
            if event.stage == STAGE:  # our own letters are in the lake already: verified there
                yield pvalue.TaggedOutput("own_dead", self._dead_coords(msg, event))
                return
            beam.metrics.Metrics.counter(NS, "upstream_dead_letters_archived").inc()
            yield pvalue.TaggedOutput("upstream_dead", [dead_letter_row(event)])
            return
        key = (event.runner_id, event.session_id)
        if isinstance(event, SensorBlock):  # a valid block the header peek could not read
            self._block(msg, key, event.end_time_us)
        else:
            self._group(key, KIND_OF[type(event)], msg)

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.windowed_value import WindowedValue

        if self._n_messages:
            self.messages_in.inc(self._n_messages)
        if self._n_blocks:
            self.blocks_in.inc(self._n_blocks)
        self._n_messages = self._n_blocks = 0
        window = [GlobalWindow()]
        for key, items in self._groups.items():
            ts = Timestamp.of(self._ts[key] / 1000.0)
            blob = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
            yield WindowedValue((key, blob), ts, window)
        for part, pairs in self._ends.items():
            yield pvalue.TaggedOutput("ends", WindowedValue((part, pairs), MIN_TIMESTAMP, window))
        self._groups, self._ends, self._ts = {}, {}, {}

    @staticmethod
    def _dead_coords(msg: KafkaMessage, letter: DeadLetter) -> tuple:
        """An own dead letter to verify: (its row's id, its reason, where it sits, its bytes)."""
        return (
            dead_letter_row(letter)["dead_letter_id"],
            letter.reason,
            (msg.topic, msg.partition, msg.offset, msg.timestamp_ms * 1000),
            msg.value,
        )

    def _dead(self, rejection: Rejection, msg: KafkaMessage, event: Any) -> dict:
        return _dead_row(
            rejection, msg.value, event, msg.topic, msg.partition, msg.offset, msg.timestamp_ms * 1000
        )


class ProcessSessionsFn(beam.DoFn):
    """CoGroupByKey result -> Arrow tables of strides | watch | sessions, row lists of dead | state,
    via ``process_session`` (one element per session and output: few, large elements).

    Sensor blocks arrive as raw messages routed on their header (checked before the shuffle, with the
    validator's clock): they are decoded and their channels validated here, all of a key's at once
    (:func:`decode_checked_blocks`); a rejected block becomes a dead letter and never reaches the
    session logic, as if it had been rejected before the shuffle."""

    def __init__(self, params: StreamParams):
        self.params = params

    def process(self, element, partition_wm: dict[int, int], partition_ends: dict[int, PartitionEnds]):
        (runner_id, session_id), groups = element
        blobs = list(groups["state"])
        items: list[Item] = []
        dead: list[dict] = []
        entries = [entry for b in groups["items"] for entry in pickle.loads(b)]
        blocks = [e for e in entries if e[0] == "sensor_block"]
        for (kind, part, off, raw, topic, ts_us), (block, bad) in zip(
            blocks, decode_checked_blocks([e[3] for e in blocks]), strict=True
        ):
            if bad is None:
                items.append(Item(kind, part, off, block, raw, topic, ts_us))
            else:
                dead.append(_dead_row(bad, raw, block, topic, part, off, ts_us))
        for kind, part, off, raw, topic, ts_us in entries:
            if kind != "sensor_block":  # decoded and validated before the shuffle
                items.append(Item(kind, part, off, decode(raw), raw, topic, ts_us))
        if not items and not blobs:  # every message of a new key was rejected: no session to start
            if dead:
                yield pvalue.TaggedOutput("dead", dead)
            return
        state = SessionState.from_bytes(blobs[0]) if blobs else SessionState(runner_id, session_id)
        state.partitions |= {it.partition for it in items}
        wm = max([partition_wm.get(p, -INF) for p in state.partitions] + [-INF])
        out = process_session(state, items, wm, self.params, partition_ends=partition_ends)
        for name, n in out.counts.items():
            beam.metrics.Metrics.counter(NS, name).inc(n)
        # Arrow tables, not row dicts, cross the shuffle to the writers: Beam's coder pickled each
        # dict's date and the like one value at a time (~8 pickle calls per stride row)
        if out.strides:
            yield pvalue.TaggedOutput("strides", pa.Table.from_pylist(out.strides, schema=STRIDES))
        if out.watch:
            yield pvalue.TaggedOutput("watch", pa.Table.from_pylist(out.watch, schema=WATCH_RECORDS))
        if out.sessions:
            yield pvalue.TaggedOutput("sessions", pa.Table.from_pylist(out.sessions, schema=SESSIONS))
        for it in out.late:
            detail = f"block {it.event.start_time_us} us arrived after the allowed lateness of its unit"
            dead.append(
                _dead_row(
                    Rejection("late", detail),
                    it.raw,
                    it.event,
                    it.topic,
                    it.partition,
                    it.offset,
                    it.kafka_ts_us,
                )
            )
        for it, bad in out.rejected:  # issue 13: sequence or marker order
            dead.append(_dead_row(bad, it.raw, it.event, it.topic, it.partition, it.offset, it.kafka_ts_us))
        if dead:
            yield pvalue.TaggedOutput("dead", dead)
        if not state.seen:  # nothing of this key was ever accepted: no session to carry
            return
        retention = int(self.params.closed_retention_s * 1e6)
        expired = state.closed and state.closed_at_us is not None and wm > state.closed_at_us + retention
        if not expired:  # sessions closed long ago are forgotten
            yield pvalue.TaggedOutput(
                "state", [(runner_id, session_id, state.home_partition, state.to_bytes())]
            )


def _read_state_rows(path: str, owned: frozenset[int] | None):
    """Carry-over rows of one state file whose home partition this shard owns (``None``: all)."""
    from pathlib import Path

    from pipelines.io.parquet_sink import read_state_file

    for r, s, part, blob in read_state_file(Path(path)):
        if part is None:  # state file from before the partition column
            part = SessionState.from_bytes(blob).home_partition
        if owned is None or part in owned or (part < 0 and 0 in owned):
            yield (r, s), blob


class PartitionWatermarks(beam.PTransform):
    """Per Kafka partition: max sensor-block end time so far (previous batches + this one).

    Input: ``(partition, [(offset, block end us)])`` (one per partition and bundle, from DecodeValidate);
    ``previous``: a PCollection of ``(partition, max block end us)`` of the batches before.
    """

    def __init__(self, previous):
        super().__init__()
        self.previous = previous

    def expand(self, ends):
        return (
            (
                ends | "BundleMax" >> beam.MapTuple(lambda part, pairs: (part, max(e for _, e in pairs))),
                self.previous,
            )
            | "MergeMaxima" >> beam.Flatten()
            | "MaxPerPartition" >> beam.CombinePerKey(max)
        )


class PartitionEndsIndex(beam.PTransform):
    """``(partition, [(offset, block end us)])`` per bundle -> ``(partition, PartitionEnds)`` of the batch
    (the quiet rule's "newest event time that arrived after offset o")."""

    def expand(self, ends):
        return (
            ends
            | "ByPartition" >> beam.GroupByKey()
            | "SuffixMaxima"
            >> beam.MapTuple(
                lambda part, lists: (part, PartitionEnds.from_pairs(x for pairs in lists for x in pairs))
            )
        )


class LatestProfiles(beam.PTransform):
    """Runner profiles (this batch + ``existing``, a PCollection of the current lake table's RUNNERS
    rows) -> one RUNNERS row per runner (latest)."""

    def __init__(self, existing):
        super().__init__()
        self.existing = existing

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

        return (
            (profiles | "ProfileRow" >> beam.Map(row), self.existing)
            | "AllProfiles" >> beam.Flatten()
            | "ByRunner" >> beam.Map(lambda r: (r["runner_id"], r))
            | "Latest"
            >> beam.CombinePerKey(lambda rows: max(rows, key=lambda r: (r["updated_at"], r["profile_seq"])))
            | "Values" >> beam.Values()
        )


class StrideFeatureBatch(beam.PTransform):
    """The whole bounded batch: Kafka ranges + carry-over state -> tagged output PCollections.

    Every per-batch input comes from the :class:`~pipelines.stream.manifest.ShardManifest` at
    ``manifest_path``, read when the pipeline runs, so one built pipeline serves every batch of a
    shard. Table outputs (strides, watch_records, sessions, dead_letters, runners, state) carry
    **lists of rows** (one list per session or bundle); ``partition_max`` carries ``(partition, max
    block end)``. Of the previous batch's carry-over files only the keys whose home partition the
    shard owns are processed, so shards that split a batch by partition index never share a key.
    """

    def __init__(
        self, manifest_path: str, params: StreamParams, now_us: int | None = None, reader: str = "python"
    ):
        super().__init__()
        self.reader = reader
        self.manifest_path = str(manifest_path)
        self.params = params
        self.now_us = now_us

    def expand(self, pbegin):
        p = pbegin.pipeline if hasattr(pbegin, "pipeline") else pbegin
        lateness = int(self.params.allowed_lateness_s * 1e6)
        manifest = (
            p
            | "Manifest" >> beam.Create([self.manifest_path])
            | "ReadManifest" >> beam.Map(ShardManifest.read)
        )
        if self.reader == "java":  # cross-language ReadFromKafka (needs Java + expansion service)
            from pipelines.io.kafka_source import read_java

            specs = ShardManifest.read(self.manifest_path).specs  # fixed when built: rebuilt per batch
            msgs = read_java(
                p,
                specs[0].bootstrap,
                sorted({s.topic for s in specs}),
                max_num_records=sum(s.stop - s.start for s in specs),
            )
        else:
            msgs = (
                manifest
                | "PartitionRanges" >> beam.FlatMap(lambda m: m.specs)
                | "ReadKafka" >> ReadKafkaPartitions(as_lists=True)
            )
        decoded = msgs | "DecodeValidate" >> beam.ParDo(DecodeValidateFn(self.now_us)).with_outputs(
            "dead", "profiles", "upstream_dead", "ends", "own_dead", main="items"
        )
        unverified = decoded.own_dead | "VerifyOwnDeadLetters" >> VerifyOwnDeadLetters(manifest)
        previous = manifest | "PreviousMaxima" >> beam.FlatMap(lambda m: m.previous_partition_max.items())
        maxima = decoded.ends | "PartitionWatermarks" >> PartitionWatermarks(previous)
        wm = maxima | "MinusLateness" >> beam.MapTuple(lambda part, v: (part, v - lateness))
        ends_index = decoded.ends | "PartitionEndsIndex" >> PartitionEndsIndex()
        state = manifest | "ReadCarryOver" >> beam.FlatMap(
            lambda m: (row for path in m.state_files for row in _read_state_rows(path, m.owned_partitions))
        )
        processed = (
            {"items": decoded.items, "state": state}
            | "KeyByRunnerSession" >> beam.CoGroupByKey()
            | "ProcessSessions"
            >> beam.ParDo(
                ProcessSessionsFn(self.params), pvalue.AsDict(wm), pvalue.AsDict(ends_index)
            ).with_outputs("strides", "watch", "sessions", "dead", "state")
        )
        dead = (
            decoded.dead,
            processed.dead,
            decoded.upstream_dead,
            unverified,
        ) | "AllDeadLetters" >> beam.Flatten()
        runners = (
            decoded.profiles
            | "LatestProfiles"
            >> LatestProfiles(manifest | "ExistingRunners" >> beam.FlatMap(lambda m: m.existing_runners))
            | "RunnerRowList" >> beam.Map(lambda row: [row])
        )
        return {
            "strides": processed.strides,
            "watch_records": processed.watch,
            "sessions": processed.sessions,
            "dead_letters": dead,
            "runners": runners,
            "state": processed.state,
            "partition_max": maxima,
        }
