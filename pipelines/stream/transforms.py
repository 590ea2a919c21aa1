"""The stride-feature stream job as one Beam composite, the same object on every runner.

    Kafka record lists (one per poll) ─ SessionStrides:
        DecodeValidate ─ per (runner, session) ─┬─ ProcessSessions (stateful DoFn: Beam state + timers)
            ├─ profiles, upstream dead letters │      ├─ strides, watch records, session markers
            └─ dead letters (bad messages)      │      ├─ rejected and late blocks -> dead letters
        restored snapshots (micro-batch only) ──┘      └─ snapshots (micro-batch only, see below)

``ProcessSessionsFn`` keeps a session's state in Beam state (``session``: the pickled
:class:`~pipelines.stream.sessionize.SessionState`, a bounded tail of samples plus bookkeeping;
``buffer``: arrived, not yet processed messages) and waits with event-time timers on Kafka record time:
``flush`` processes the buffer once the watermark passes it, ``close`` closes a session that went
quiet (``session_gap_s`` after its last event) and later forgets it (``closed_retention_s``). The event
time logic is :mod:`pipelines.stream.sessionize` and the science is numpy: the DoFn only moves state.

The local micro-batch executor (jobs/stream_driver.py) runs the same composite as one bounded pipeline
per batch. It passes ``event_time_cap_us`` (its watermark: record time up to which the input is
complete) and the previous batch's snapshots as ``restore``; at the end of the bounded input the
``end`` timer hands every key's Beam state to it as a ``snapshot`` row instead of closing the session,
and ``close`` timers beyond the cap wait for a later batch. On a streaming runner neither is used: the
runner keeps the state and the global window never ends.

Errors are tagged outputs (``dead``), never exceptions that fail the pipeline.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam import pvalue
from apache_beam.coders import BytesCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp

from infra.publish import make_dead_letter, topic_kinds
from pipelines.io.kafka_source import KafkaMessage
from pipelines.stream.own_letters import VerifyOwnDeadLetters
from pipelines.stream.sessionize import INF, Item, Output, SessionState, StreamParams, process_session
from schemas.block_reader import peek_block_header, read_block
from schemas.codec import DecodeError, decode
from schemas.events import DeadLetter, RunnerProfile, SensorBlock, SessionMarker, WatchRecord
from schemas.tables import DEAD_LETTERS, SESSIONS, STRIDES, WATCH_RECORDS
from schemas.validate import Rejection, check, check_block_bodies, check_block_header, check_envelope

NS = "stream"
STAGE = "stream"
KIND_OF = {SensorBlock: "sensor_block", WatchRecord: "watch_record", SessionMarker: "session_marker"}
RESTORE = "restore"  # entry kind of a snapshot fed back by the micro-batch executor
#: the composite's lake tables: schema and sort order of their files (both executions write these)
OUTPUT_TABLES = {
    "strides": (STRIDES, ("runner_id", "ic_time")),
    "watch_records": (WATCH_RECORDS, ("runner_id", "timestamp")),
    "sessions": (SESSIONS, ("runner_id", "timestamp")),
    "dead_letters": (DEAD_LETTERS, ("dead_letter_id",)),
}


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
    """Kafka record lists -> per bundle, one ``((runner, session), pickled list of entries)`` per key,
    timestamped with the newest record time among them | profiles | upstream dead letters | dead
    letters (tagged, one-row lists).

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
        self._ts: dict[tuple[str, str], int] = {}
        self._n_messages = self._n_blocks = 0  # counted per bundle (a metrics update costs ~10 us)

    def process(self, msgs: list[tuple]):
        for fields in msgs:
            yield from self._one(KafkaMessage._make(fields))

    def _group(self, key: tuple[str, str], kind: str, msg: KafkaMessage) -> None:
        entry = (kind, msg.partition, msg.offset, msg.value, msg.topic, msg.timestamp_ms * 1000)
        self._groups.setdefault(key, []).append(entry)
        self._ts[key] = max(self._ts.get(key, -INF), msg.timestamp_ms)

    def _block(self, msg: KafkaMessage, key: tuple[str, str]) -> None:
        self._n_blocks += 1
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
            self._block(msg, (header.runner_id, header.session_id))
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
            self._block(msg, key)
        else:
            self._group(key, KIND_OF[type(event)], msg)

    def finish_bundle(self):
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
        self._groups, self._ts = {}, {}

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


def _items_of(entries: list[tuple]) -> tuple[list[Item], list[dict]]:
    """Raw entries -> valid :class:`Item` s and dead-letter rows of the blocks rejected here (their
    samples are decoded and checked once, after the shuffle: :func:`decode_checked_blocks`)."""
    items: list[Item] = []
    dead: list[dict] = []
    blocks = [e for e in entries if e[0] == "sensor_block"]
    for (_, part, off, raw, topic, ts_us), (block, bad) in zip(
        blocks, decode_checked_blocks([e[3] for e in blocks]), strict=True
    ):
        if bad is None:
            items.append(Item("sensor_block", part, off, block, raw, topic, ts_us))
        else:
            dead.append(_dead_row(bad, raw, block, topic, part, off, ts_us))
    for kind, part, off, raw, topic, ts_us in entries:
        if kind not in ("sensor_block", RESTORE):  # decoded and validated before the shuffle
            items.append(Item(kind, part, off, decode(raw), None, topic, ts_us))
    return items, dead


def _late_rows(out: Output) -> list[dict]:
    rows = []
    for it in out.late:
        detail = (
            f"block {it.event.start_time_us} us arrived after the allowed lateness of its unit or session"
        )
        rows.append(
            _dead_row(
                Rejection("late", detail), it.raw, it.event, it.topic, it.partition, it.offset, it.kafka_ts_us
            )
        )
    return rows


def _outputs(out: Output, dead: list[dict]):
    """Tagged outputs of one processing step: Arrow tables (Beam's coder pickled a dict's values one
    by one, ~8 pickle calls per stride row) and dead-letter row lists."""
    for name, n in out.counts.items():
        beam.metrics.Metrics.counter(NS, name).inc(n)
    if out.strides:
        yield pvalue.TaggedOutput("strides", pa.Table.from_pylist(out.strides, schema=STRIDES))
    if out.watch:
        yield pvalue.TaggedOutput("watch", pa.Table.from_pylist(out.watch, schema=WATCH_RECORDS))
    if out.sessions:
        yield pvalue.TaggedOutput("sessions", pa.Table.from_pylist(out.sessions, schema=SESSIONS))
    dead = dead + _late_rows(out)
    for it, bad in out.rejected:  # sequence numbers going backwards, markers out of order
        dead.append(_dead_row(bad, it.raw, it.event, it.topic, it.partition, it.offset, it.kafka_ts_us))
    if dead:
        yield pvalue.TaggedOutput("dead", dead)


@beam.typehints.with_input_types(tuple[tuple[str, str], bytes])  # a deterministic key coder for state
class ProcessSessionsFn(beam.DoFn):
    """``((runner, session), pickled entry list)`` -> strides | watch | sessions | dead | snapshot.

    State: ``buffer`` (entry lists that arrived), ``session`` (:class:`SessionState` bytes). Timers on
    Kafka record time: ``flush`` (process the buffer), ``close`` (quiet gap, then forgetting a closed
    session), ``end`` (end of a bounded micro-batch: hand the state over as a snapshot).
    """

    BUFFER = BagStateSpec("buffer", BytesCoder())
    SESSION = ReadModifyWriteStateSpec("session", BytesCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)
    CLOSE = TimerSpec("close", TimeDomain.WATERMARK)
    END = TimerSpec("end", TimeDomain.WATERMARK)

    def __init__(self, params: StreamParams, event_time_cap_us: int | None = None):
        self.params = params
        self.cap_us = event_time_cap_us

    def process(
        self,
        element,
        ts=beam.DoFn.TimestampParam,
        buffer=beam.DoFn.StateParam(BUFFER),
        flush=beam.DoFn.TimerParam(FLUSH),
        end=beam.DoFn.TimerParam(END),
    ):
        buffer.add(element[1])
        flush.set(ts)
        if self.cap_us is not None:
            end.set(GlobalWindow().max_timestamp())

    def _load(self, key, buffer, session) -> tuple[SessionState | None, list[tuple]]:
        blob = session.read()
        state = SessionState.from_bytes(blob) if blob is not None else None
        entries: list[tuple] = []
        for chunk in buffer.read():
            for entry in pickle.loads(chunk):
                if entry[0] == RESTORE:
                    state = state or SessionState.from_bytes(entry[1])
                else:
                    entries.append(entry)
        return state, entries

    def _step(self, key, buffer, session, close, force_close: bool):
        state, entries = self._load(key, buffer, session)
        items, dead = _items_of(entries)
        buffer.clear()
        if state is None and not items:  # every message of a new key was rejected: no session
            yield from _outputs(Output(), dead)
            return
        state = state or SessionState(*key)
        quiet_at = state.quiet_close_at_us(self.params)
        # the executor's watermark already passed the quiet gap: close now, whichever timer fires first
        force_close |= self.cap_us is not None and quiet_at is not None and quiet_at <= self.cap_us
        out = process_session(state, items, self.params, force_close=force_close and not state.closed)
        if not state.seen:  # nothing of this key was ever accepted: no session to keep
            session.clear()
            yield from _outputs(out, dead)
            return
        session.write(state.to_bytes())
        at = state.quiet_close_at_us(self.params)
        if state.closed and state.closed_at_us is not None:
            at = state.closed_at_us + int(self.params.closed_retention_s * 1e6)
        if at is not None:
            close.set(Timestamp(micros=min(at, INF)))
        yield from _outputs(out, dead)

    @on_timer(FLUSH)
    def on_flush(
        self,
        key=beam.DoFn.KeyParam,
        buffer=beam.DoFn.StateParam(BUFFER),
        session=beam.DoFn.StateParam(SESSION),
        close=beam.DoFn.TimerParam(CLOSE),
    ):
        yield from self._step(key, buffer, session, close, force_close=False)

    @on_timer(CLOSE)
    def on_close(
        self,
        fired=beam.DoFn.TimestampParam,
        key=beam.DoFn.KeyParam,
        buffer=beam.DoFn.StateParam(BUFFER),
        session=beam.DoFn.StateParam(SESSION),
        close=beam.DoFn.TimerParam(CLOSE),
    ):
        if self.cap_us is not None and fired.micros > self.cap_us:
            return  # not yet true in record time: the snapshot carries the session to a later batch
        blob = session.read()
        if blob is not None and SessionState.from_bytes(blob).closed:
            yield from self._step(key, buffer, session, close, force_close=False)  # late arrivals
            session.clear()  # closed_retention_s after closing: forgotten
            return
        yield from self._step(key, buffer, session, close, force_close=True)

    @on_timer(END)
    def on_end(
        self,
        key=beam.DoFn.KeyParam,
        buffer=beam.DoFn.StateParam(BUFFER),
        session=beam.DoFn.StateParam(SESSION),
        close=beam.DoFn.TimerParam(CLOSE),
    ):
        """End of a bounded micro-batch: process what arrived, then hand the state over."""
        yield from self._step(key, buffer, session, close, force_close=False)
        blob = session.read()
        if blob is not None:
            home = SessionState.from_bytes(blob).home_partition
            snapshot = pickle.dumps([(RESTORE, blob)], protocol=pickle.HIGHEST_PROTOCOL)
            yield pvalue.TaggedOutput("snapshot", [(key[0], key[1], home, snapshot)])
        session.clear()
        close.clear()


class SessionStrides(beam.PTransform):
    """Kafka record lists (``KafkaMessage`` field tuples, one list per poll) -> dict of tagged
    PCollections: ``strides``, ``watch_records``, ``sessions`` (Arrow tables), ``dead_letters`` (row
    lists), ``profiles`` (:class:`RunnerProfile`), ``snapshots`` (row lists, micro-batch only).

    ``restore``: a PCollection of ``((runner, session), snapshot bytes)`` from the previous micro-batch;
    ``event_time_cap_us``: the micro-batch executor's watermark (``None`` on a streaming runner);
    ``dead_letters_dir``: the lake's dead_letters table, where letters that say they are this job's own
    are looked up (a forged one is archived as ``unverified_dead_letter``).
    """

    def __init__(
        self,
        params: StreamParams = StreamParams(),
        now_us: int | None = None,
        event_time_cap_us: int | None = None,
        restore=None,
        dead_letters_dir: str | None = None,
    ):
        super().__init__()
        self.params = params
        self.now_us = now_us
        self.cap_us = event_time_cap_us
        self.restore = restore
        self.dead_letters_dir = None if dead_letters_dir is None else str(dead_letters_dir)

    def expand(self, msgs):
        decoded = msgs | "DecodeValidate" >> beam.ParDo(DecodeValidateFn(self.now_us)).with_outputs(
            "dead", "profiles", "upstream_dead", "own_dead", main="items"
        )
        unverified = decoded.own_dead | "VerifyOwnDeadLetters" >> VerifyOwnDeadLetters(self.dead_letters_dir)
        keyed = decoded.items
        if self.restore is not None:
            keyed = (keyed, self.restore) | "WithRestoredState" >> beam.Flatten()
        processed = keyed | "ProcessSessions" >> beam.ParDo(
            ProcessSessionsFn(self.params, self.cap_us)
        ).with_outputs("strides", "watch", "sessions", "dead", "snapshot")
        dead = (
            decoded.dead,
            processed.dead,
            decoded.upstream_dead,
            unverified,
        ) | "AllDeadLetters" >> beam.Flatten()
        return {
            "strides": processed.strides,
            "watch_records": processed.watch,
            "sessions": processed.sessions,
            "dead_letters": dead,
            "profiles": decoded.profiles,
            "snapshots": processed.snapshot,
        }


class RestoredSnapshots(beam.PTransform):
    """Snapshot rows ``(runner, session, home partition, snapshot bytes)`` of the previous micro-batch
    -> input elements of :class:`SessionStrides` (their entries are buffered again as they were)."""

    def __init__(self, rows: list[tuple[str, str, int, bytes]]):
        super().__init__()
        self.rows = [((r, s), blob) for r, s, _, blob in rows]

    def expand(self, pbegin):
        return pbegin | "Create" >> beam.Create(self.rows).with_output_types(tuple[tuple[str, str], bytes])


class LatestProfiles(beam.PTransform):
    """Runner profiles (this batch + ``existing``, a PCollection of the current lake table's RUNNERS
    rows) -> one RUNNERS row per runner (latest). Bounded inputs (the micro-batch executor)."""

    def __init__(self, existing):
        super().__init__()
        self.existing = existing

    def expand(self, profiles):
        return (
            (profiles | "ProfileRow" >> beam.Map(profile_row), self.existing)
            | "AllProfiles" >> beam.Flatten()
            | "ByRunner" >> beam.Map(lambda r: (r["runner_id"], r))
            | "Latest"
            >> beam.CombinePerKey(lambda rows: max(rows, key=lambda r: (r["updated_at"], r["profile_seq"])))
            | "Values" >> beam.Values()
        )


def profile_row(p: RunnerProfile) -> dict:
    """RUNNERS row of a profile."""
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
