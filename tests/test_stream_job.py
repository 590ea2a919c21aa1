"""The stream job end to end on the real broker: exactly-once across batch boundaries, dedup, late data,
dead letters, reconciliation, lake tables and the strides topic."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from infra import topics
from infra.kafka_io import make_producer, topic_counts
from infra.settings import Paths
from jobs.stream_driver import StreamOptions, load_checkpoint, run
from pipelines.io.parquet_sink import read_state_keys
from pipelines.lake import read_table
from pipelines.stream.sessionize import Item, SessionState, process_session
from pipelines.stream.synthetic import make_session
from schemas.codec import encode
from schemas.events import RunnerProfile, WatchRecord
from schemas.tables import DEAD_LETTERS, RUNNERS, STRIDES, WATCH_RECORDS

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
FEATURES = [f.name for f in STRIDES if f.name not in ("date",)]


def fleet(n_runners: int = 3, duration_s: int = 40):
    """Sessions with their events in a realistic arrival order: duplicates, a few out-of-order blocks."""
    out = []
    for r in range(n_runners):
        rid = f"r{r:03d}"
        truth, blocks, markers = make_session(
            rid, f"{rid}-s1", T0 + r * 7_000_000, duration_s, seed=r, glute_share=0.3 + 0.1 * r
        )
        rng = np.random.default_rng(r)
        events = [markers[0]]
        for b in blocks:
            events.append(b)
            if rng.random() < 0.03:
                events.append(b)  # duplicate delivery
        # swap a few neighbours (out of order, well within the allowed lateness)
        for i in rng.choice(np.arange(5, len(events) - 10), 6, replace=False):
            events[i], events[i + 3] = events[i + 3], events[i]
        events += [
            WatchRecord(rid, f"{rid}.watch", f"{rid}-s1", s, T0 + s * 1_000_000, heart_rate_bpm=140)
            for s in range(duration_s)
        ]
        events.append(markers[1])
        out.append((truth, events))
    return out


def offline(events_by_runner) -> dict[str, dict]:
    """One whole-session computation per session (all events at once, closed at the end)."""
    rows = {}
    for _, events in events_by_runner:
        items = [
            Item(
                type(e).__name__
                and {"SensorBlock": "sensor_block", "SessionMarker": "session_marker"}.get(
                    type(e).__name__, "watch_record"
                ),
                0,
                i,
                e,
            )
            for i, e in enumerate(events)
        ]
        state = SessionState(events[0].runner_id, events[0].session_id)
        out = process_session(state, items, force_close=True)
        rows.update({r["stride_id"]: r for r in out.strides})
    return rows


def produce(bootstrap: str, events) -> None:
    producer = make_producer(bootstrap)
    for e in events:
        kind = {
            "SensorBlock": "sensor_blocks",
            "WatchRecord": "watch_records",
            "SessionMarker": "sessions",
            "RunnerProfile": "runner_profiles",
        }[type(e).__name__]
        producer.send(topics.topic(kind), key=e.key, value=encode(e))
    producer.flush()
    producer.close()


def assert_same_strides(got: dict[str, dict], want: dict[str, dict]) -> None:
    assert set(got) == set(want), (len(set(got) - set(want)), len(set(want) - set(got)))
    for sid, w in want.items():
        g = got[sid]
        for name in FEATURES:
            a, b = g[name], w[name]
            if isinstance(b, float) and isinstance(a, float):
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b)), (
                    sid,
                    name,
                    a,
                    b,
                )
            elif name.endswith("_time") and b is not None:
                assert _us(a) == _us(b), (sid, name, a, b)
            else:
                assert a == b, (sid, name, a, b)


def _us(v) -> int:
    return v if isinstance(v, int) else int(round(v.timestamp() * 1e6))


def lake_strides(paths: Paths) -> dict[str, dict]:
    table = read_table(paths.table("strides"), STRIDES)
    rows = table.to_pylist()
    ids = [r["stride_id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate strides in the lake"
    return {r["stride_id"]: r for r in rows}


@pytest.mark.timeout(300)
def test_streamed_in_small_batches_equals_offline(kafka: str, paths: Paths) -> None:
    sessions = fleet()
    profile = RunnerProfile("r000", 0, T0, "club", "female", "1980s", "Europe/Berlin", 50, 190)
    produce(kafka, [e for _, ev in sessions for e in ev] + [profile, profile])
    # garbage that must be dead-lettered, not crash the batch
    producer = make_producer(kafka)
    producer.send(topics.topic("sensor_blocks"), key=b"r000", value=b"not a gluteflow message")
    producer.send(topics.topic("sensor_blocks"), key=b"r001", value=None)  # a tombstone
    producer.flush()
    producer.close()

    opts = StreamOptions(kafka, paths, max_batch_bytes=400_000)  # many small batches
    results = run(opts, until_idle_s=0.0)
    assert len(results) >= 5, len(results)
    assert all(r.reconciles for r in results), [r.counters for r in results if not r.reconciles]

    got = lake_strides(paths)
    want = offline(sessions)
    assert len(want) > 3 * 80
    assert_same_strides(got, want)

    counters: dict[str, int] = {}
    for r in results:
        for k, v in r.counters.items():
            counters[k] = counters.get(k, 0) + v
    n_in = sum(
        topic_counts(
            kafka,
            [
                topics.topic(k)
                for k in ("sensor_blocks", "watch_records", "sessions", "runner_profiles", "dead_letters")
            ],
        ).values()
    )
    assert counters["messages_in"] == n_in
    assert counters["duplicates_dropped"] > 0
    assert counters["dead_letters_bad_header"] == 2
    dead = read_table(paths.table("dead_letters"), DEAD_LETTERS)
    assert dead.num_rows == 2 and set(dead["reason"].to_pylist()) == {"bad_header"}
    assert any("tombstone" in d for d in dead["detail"].to_pylist())
    watch = read_table(paths.table("watch_records"), WATCH_RECORDS)
    assert watch.num_rows == 3 * 40
    runners = read_table(paths.table("runners"), RUNNERS, partition_cols=())
    assert runners.num_rows == 1
    ckpt = load_checkpoint(paths)
    assert ckpt["published"] and ckpt["batch"] == len(results)
    # the strides topic got every stride (at-least-once)
    assert topic_counts(kafka, [topics.topic("strides")])[topics.topic("strides")] >= len(want)
    # rerun: nothing new, nothing duplicated
    assert run(opts, until_idle_s=0.0) == []
    assert lake_strides(paths).keys() == got.keys()


@pytest.mark.timeout(300)
def test_blocks_rejected_after_the_shuffle_are_dead_lettered(kafka: str, paths: Paths) -> None:
    """Blocks are routed on their header and decoded and checked once, after the shuffle: a block with a
    valid header but NaN samples or a cut-off body is dead-lettered there with its reason and source
    coordinates, a block with a bad header before the shuffle; the valid strides are unchanged, counts
    reconcile, and a key whose only block was rejected leaves no session state behind."""
    sessions = fleet(n_runners=1)
    events = sessions[0][1]
    block = next(e for e in events if type(e).__name__ == "SensorBlock" and e.sensor == "foot_imu")
    nan = dataclasses.replace(block, channels={k: v.copy() for k, v in block.channels.items()})
    nan.channels["acc_x"][3] = np.nan
    ghost = dataclasses.replace(nan, runner_id="ghost", session_id="ghost-s1")
    slow = dataclasses.replace(
        block, sample_rate_hz=5.0, n_samples=5, channels={k: v[:5] for k, v in block.channels.items()}
    )
    produce(kafka, events)
    producer = make_producer(kafka)
    name = topics.topic("sensor_blocks")
    bad = {
        "non_finite": encode(nan),
        "decode_error": encode(block)[:-300],  # header intact, samples cut off
        "bad_sample_rate": encode(slow),
    }
    for value in bad.values():
        producer.send(name, key=block.key, value=value)
    producer.send(name, key=b"ghost", value=encode(ghost))
    producer.flush()
    producer.close()

    results = run(StreamOptions(kafka, paths, max_batch_bytes=300_000), until_idle_s=0.0)
    assert all(r.reconciles for r in results), [r.counters for r in results if not r.reconciles]
    assert_same_strides(lake_strides(paths), offline(sessions))
    dead = read_table(paths.table("dead_letters"), DEAD_LETTERS).to_pylist()
    assert sorted(d["reason"] for d in dead) == sorted([*bad, "non_finite"])
    by_value = {d["original"]: d for d in dead}
    for reason, value in bad.items():
        letter = by_value[value]
        assert letter["reason"] == reason and letter["source_topic"] == name
        assert letter["dead_letter_id"] == f"{name}:{letter['source_partition']}:{letter['source_offset']}"
    assert by_value[encode(ghost)]["runner_id"] == "ghost"
    ckpt = load_checkpoint(paths)
    keys = {k for f in ckpt["state_files"] for k in read_state_keys(paths.state / "stream" / f)}
    assert ("r000", "r000-s1") in keys and ("ghost", "ghost-s1") not in keys


def test_late_block_goes_to_dead_letters(kafka: str, paths: Paths) -> None:
    truth, blocks, markers = make_session("r9", "r9-s1", T0, 80, seed=3)
    held = next(b for b in blocks if b.sensor == "foot_imu" and b.seq == 5)
    rest = [b for b in blocks if b is not held]
    produce(kafka, [markers[0]] + rest + [held, markers[1]])  # 70 s after its successors: too late
    results = run(StreamOptions(kafka, paths, max_batch_bytes=2_000_000), until_idle_s=0.0)
    dead = read_table(paths.table("dead_letters"), DEAD_LETTERS).to_pylist()
    assert [d["reason"] for d in dead] == ["late"]
    assert dead[0]["seq"] == 5 and dead[0]["device_id"] == held.device_id
    assert all(r.reconciles for r in results)
    strides = lake_strides(paths)
    left = sorted(_us(s["ic_time"]) for s in strides.values() if s["foot"] == "left")
    # no stride spans the permanent 1 s gap of the late block
    gap = (held.start_time_us, held.end_time_us)
    nxt = {_us(s["ic_time"]): _us(s["next_ic_time"]) for s in strides.values() if s["foot"] == held.side}
    assert not any(ic < gap[1] and n > gap[0] for ic, n in nxt.items())
    assert len(left) > 80


def _same_partition_runner_ids(n_partitions: int) -> tuple[str, str]:
    """Two runner ids that kafka-python's default partitioner puts on one partition."""
    from kafka.partitioner.default import murmur2

    by_part: dict[int, str] = {}
    for i in range(1000):
        rid = f"rp{i:03d}"
        part = (murmur2(rid.encode()) & 0x7FFFFFFF) % n_partitions
        if part in by_part:
            return by_part[part], rid
        by_part[part] = rid
    raise AssertionError("no two runner ids share a partition")


@pytest.mark.timeout(300)
def test_backlog_of_runners_sharing_a_partition_is_not_late(kafka: str, paths: Paths) -> None:
    """Runner B's whole session reaches Kafka after runner A's, with the same event times, on one
    partition (a replayed backlog, a phone syncing late). A's blocks are newer in event time than most
    of B's but arrived before them: cut into batches, B's session must not be closed by them."""
    a, b = _same_partition_runner_ids(6)
    sessions = []
    for i, rid in enumerate((a, b)):
        truth, blocks, markers = make_session(rid, f"{rid}-s1", T0, 300, seed=10 + i)
        sessions.append((truth, [markers[0], *blocks, markers[1]]))
    produce(kafka, [e for _, events in sessions for e in events])
    results = run(StreamOptions(kafka, paths, max_batch_bytes=1_500_000), until_idle_s=0.0)
    assert len(results) >= 4, len(results)  # B's session is cut across batches
    late = sum(r.counters.get("dead_letters_late", 0) for r in results)
    assert late == 0, late
    assert_same_strides(lake_strides(paths), offline(sessions))


@pytest.mark.timeout(300)
def test_open_session_strides_are_written_before_it_ends(kafka: str, paths: Paths) -> None:
    """Freshness mechanism: strides of a session still in progress (no end marker, data up to 60 s of
    120 s) reach the lake in the batch that read their samples, not when the session closes."""
    truth, blocks, markers = make_session("r7", "r7-s1", T0, 120, seed=7)
    produce(kafka, [markers[0], *(b for b in blocks if b.end_time_us <= T0 + 60_000_000)])
    results = run(StreamOptions(kafka, paths), once=True)
    assert len(results) == 1
    strides = lake_strides(paths)
    last_next_ic = max(_us(s["next_ic_time"]) for s in strides.values())
    # all but the last few seconds: a stride waits for its next IC to be 1 s (guard) inside its segment
    # and for pelvis/EMG data 5 s beyond it (the clock-offset margin of the joins)
    assert T0 + 50_000_000 <= last_next_ic <= T0 + 60_000_000, (last_next_ic - T0) / 1e6
    want = {
        sid: w for sid, w in offline([(truth, [markers[0], *blocks, markers[1]])]).items() if sid in strides
    }
    assert len(want) == len(strides)  # every stride written so far is final: equal to the whole-session pass
    assert_same_strides(strides, want)
