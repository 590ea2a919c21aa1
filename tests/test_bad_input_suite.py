"""Bad input at the stream job's door (issue 13, item 3 and the profile contract of item 4).

Malformed messages of many kinds go straight to the input topics of the real broker, as a buggy device
or gateway would send them, after two good runners' sessions. Per kind: one dead letter with the
expected reason at the message's own Kafka coordinates. Overall: counts reconcile, the good runners'
strides, watch records and session rows equal a run without the bad messages (whole tables, every
column), no runner appears that only a bad message named, and the job's own dead letters read back
from the topic are recognised as its own while a forged one is archived.

The kinds that are legitimate device reality (redelivery, reordering, clock drift, an upstream dead
letter, a profile update) are sent too and must be accepted and counted as what they are.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest
from test_stream_job import T0, fleet, produce  # tests/ is on sys.path (rootdir conftest)

from infra import topics
from infra.kafka_io import make_producer, topic_counts
from infra.settings import Paths
from jobs.stream_driver import INPUT_TOPIC_KEYS, StreamOptions, run
from pipelines.lake import read_table
from schemas.codec import encode, encode_record
from schemas.events import DeadLetter, RunnerProfile, SensorBlock, SessionMarker, WatchRecord
from schemas.tables import DEAD_LETTERS, RUNNERS, SESSIONS, STRIDES, WATCH_RECORDS
from schemas.validate import MAX_FUTURE_US, REASONS

HOUR_US = 3_600_000_000
NOW_US = time.time_ns() // 1000


@dataclass
class Kind:
    """One kind of bad message: ``(topic key, Kafka key, value)`` messages, the last is the bad one."""

    name: str
    reason: str  # expected dead-letter reason
    messages: Callable[[dict], list[tuple[str, bytes | None, bytes | None]]]


def watch(rid: str = "x", seq: int = 0, t: int = T0, **over) -> WatchRecord:
    return WatchRecord(rid, f"{rid}.watch", f"{rid}-s1", seq, t, **{"heart_rate_bpm": 140, **over})


def marker(rid: str, which: str, t: int, seq: int) -> SessionMarker:
    return SessionMarker(rid, f"{rid}.watch", f"{rid}-s1", seq, t, which, "device")


def profile(rid: str = "x", **over) -> RunnerProfile:
    fields = dict(
        runner_id=rid,
        seq=1,
        updated_at_us=T0,
        cohort="club",
        sex="female",
        birth_year_band="1985-1989",
        time_zone="Europe/Berlin",
    )
    return RunnerProfile(**{**fields, **over})


def block_of(g: dict, rid: str, **over) -> SensorBlock:
    """A valid foot block of runner ``rid`` (another runner's session: no strides come of one block)."""
    b = g["block"]
    return dataclasses.replace(
        b, **{"runner_id": rid, "device_id": f"{rid}.foot", "session_id": f"{rid}-s1", **over}
    )


def one(topic_key: str, event, key: bytes | None = None, value: bytes | None = None):
    """One message of ``event`` (its own key unless given) on ``topic_key``."""
    return [(topic_key, event.key if key is None else key, encode(event) if value is None else value)]


def _channel_bytes_not_float32(g: dict) -> bytes:
    rec = block_of(g, "x12").header_dict()
    rec["channels"] = [{"name": n, "unit": u, "data": b"\x00" * 5} for n, u in g["block"].units.items()]
    return encode_record("sensor_block", rec)


def _forged_dead_letter() -> DeadLetter:
    name = topics.topic("sensor_blocks")
    return DeadLetter("late", "forged", "stream", b"GF", T0, "r000", None, None, None, name, 0, 999_999)


B, W, S, P, D = "sensor_blocks", "watch_records", "sessions", "runner_profiles", "dead_letters"
TEN_KB = "i" * 10_000

KINDS: list[Kind] = [
    # bytes that are not a (whole, single) gluteflow message
    Kind("not_gluteflow_bytes", "bad_header", lambda g: [(B, b"x01", b"not a gluteflow message")]),
    Kind("tombstone", "bad_header", lambda g: [(B, b"x02", None)]),
    Kind("empty_value", "bad_header", lambda g: [(W, b"x03", b"")]),
    Kind("magic_only", "bad_header", lambda g: [(S, b"x04", b"GF")]),
    Kind("unknown_kind_code", "unknown_schema", lambda g: [(B, b"x05", b"GF\x09\x01" + b"\x00" * 20)]),
    Kind("unknown_schema_version", "unknown_schema", lambda g: [(W, b"x06", b"GF\x02\xfe" + b"\x00" * 20)]),
    Kind("truncated_block", "decode_error", lambda g: one(B, block_of(g, "x07"), value=encode(block_of(g, "x07"))[:-300])),
    Kind("truncated_watch", "decode_error", lambda g: one(W, watch("x08"), value=encode(watch("x08"))[:-3])),
    Kind("trailing_bytes_block", "trailing_bytes", lambda g: one(B, block_of(g, "x09"), value=encode(block_of(g, "x09")) + b"\x00\x01")),
    Kind("trailing_bytes_watch", "trailing_bytes", lambda g: one(W, watch("x10"), value=encode(watch("x10")) + b"junk")),
    Kind("two_messages_glued", "trailing_bytes", lambda g: one(W, watch("x11"), value=encode(watch("x11")) + encode(watch("x11", 1)))),
    Kind("channel_bytes_not_float32", "length_mismatch", lambda g: [(B, b"x12", _channel_bytes_not_float32(g))]),
    # the envelope: topic and key
    Kind("watch_record_on_blocks_topic", "wrong_topic", lambda g: one(B, watch("x13"))),
    Kind("profile_on_blocks_topic", "wrong_topic", lambda g: one(B, profile("x14"))),
    Kind("marker_on_blocks_topic", "wrong_topic", lambda g: one(B, marker("x15", "start", T0, 0))),
    Kind("dead_letter_on_blocks_topic", "wrong_topic", lambda g: one(B, DeadLetter("late", "x", "simulate", b"", T0, "x16"))),
    Kind("block_on_watch_topic", "wrong_topic", lambda g: one(W, block_of(g, "x17"))),
    Kind("profile_on_sessions_topic", "wrong_topic", lambda g: one(S, profile("x18"))),
    Kind("block_keyed_by_other_runner", "bad_key", lambda g: one(B, block_of(g, "x19"), key=b"r000")),
    Kind("block_null_key", "bad_key", lambda g: [(B, None, encode(block_of(g, "x20")))]),
    Kind("watch_null_key", "bad_key", lambda g: [(W, None, encode(watch("x21")))]),
    Kind("marker_keyed_by_other_runner", "bad_key", lambda g: one(S, marker("x22", "start", T0, 0), key=b"x99")),
    Kind("profile_keyed_by_other_runner", "bad_key", lambda g: one(P, profile("x23"), key=b"r001")),
    # the id contract
    Kind("runner_id_10kb", "bad_id", lambda g: one(W, watch(TEN_KB))),
    Kind("session_id_10kb", "bad_id", lambda g: one(B, block_of(g, "x25", session_id=TEN_KB))),
    Kind("runner_id_control_chars", "bad_id", lambda g: one(W, watch("x26\x00\x1b[31m"))),
    Kind("device_id_newline", "bad_id", lambda g: one(S, dataclasses.replace(marker("x27", "start", T0, 0), device_id="w\nERROR x"))),
    Kind("runner_id_with_space", "bad_id", lambda g: one(W, watch("x28 y"))),
    Kind("empty_runner_id", "missing_field", lambda g: one(W, watch(""))),
    # the profile contract (item 4): pseudonymous ids and bands only
    Kind("runner_id_email", "contact_data", lambda g: one(P, profile("jane.doe@example.com"))),
    Kind("cohort_email", "contact_data", lambda g: one(P, profile("x31", cohort="jane.doe@example.com"))),
    Kind("cohort_phone", "contact_data", lambda g: one(P, profile("x32", cohort="Jane +44 7700 900123"))),
    Kind("cohort_formula", "out_of_range", lambda g: one(P, profile("x33", cohort="=cmd|' /C calc'!A0"))),
    Kind("birth_exact_year", "out_of_range", lambda g: one(P, profile("x34", birth_year_band="1983"))),
    Kind("time_zone_not_iana", "out_of_range", lambda g: one(P, profile("x35", time_zone="../../etc/passwd"))),
    # values
    Kind("heart_rate_300", "out_of_range", lambda g: one(W, watch("x36", heart_rate_bpm=300))),
    Kind("nan_samples", "non_finite", lambda g: one(B, _with_sample(block_of(g, "x37"), np.nan))),
    Kind("saturated_imu", "out_of_range", lambda g: one(B, _with_sample(block_of(g, "x38"), 1e6))),
    Kind("foot_imu_at_5_hz", "bad_sample_rate", lambda g: one(B, block_of(g, "x39", sample_rate_hz=5.0))),
    Kind("missing_channel", "bad_channels", lambda g: one(B, _drop_channel(block_of(g, "x40")))),
    Kind("negative_seq", "bad_sequence", lambda g: one(W, watch("x41", seq=-1))),
    Kind("year_1999", "stale_timestamp", lambda g: one(W, watch("x42", t=915_148_800_000_000))),
    Kind("watch_clock_20h_ahead", "future_timestamp", lambda g: one(W, watch("x43", t=NOW_US + 20 * HOUR_US))),
    Kind("block_clock_2h_ahead", "future_timestamp", lambda g: one(B, block_of(g, "x44", start_time_us=NOW_US + 2 * HOUR_US))),
    # session state: markers and sequence numbers
    Kind("end_with_no_start", "session_order", lambda g: one(S, marker("x45", "end", T0, 1))),
    Kind("end_before_start", "session_order", lambda g: one(S, marker("x46", "start", T0, 0)) + one(S, marker("x46", "end", T0 - 10_000_000, 1))),
    Kind("start_after_end", "session_order", lambda g: one(S, marker("x47", "start", T0, 0)) + one(S, marker("x47", "end", T0 + 60_000_000, 1)) + one(S, marker("x47", "start", T0 + 90_000_000, 2))),
    Kind("watch_seq_backwards", "sequence_backwards", lambda g: [m for s in range(5) for m in one(W, watch("x48", s, T0 + s * 1_000_000))] + one(W, watch("x48", 2, T0 + 10_000_000))),
    Kind("good_runners_block_seq_reused", "sequence_backwards", lambda g: one(B, g["reused"])),
    # the dead-letter topic
    Kind("forged_own_dead_letter", "unverified_dead_letter", lambda g: one(D, _forged_dead_letter())),
]  # fmt: skip

# legitimate device reality: accepted, and counted as what it is
ACCEPTED = {
    "redelivered_block": "duplicates_dropped",
    "watch_clock_10_min_ahead": "watch_records_accepted",
    "upstream_dead_letter": "upstream_dead_letters_archived",
    "profile_update": "profiles_accepted",
}


def _with_sample(b: SensorBlock, value: float) -> SensorBlock:
    channels = {k: v.copy() for k, v in b.channels.items()}
    channels["acc_x"][3] = value
    return dataclasses.replace(b, channels=channels)


def _drop_channel(b: SensorBlock) -> SensorBlock:
    return dataclasses.replace(
        b,
        channels={k: v for k, v in b.channels.items() if k != "gyr_z"},
        units={k: u for k, u in b.units.items() if k != "gyr_z"},
    )


def _send(bootstrap: str, messages) -> list[tuple[str, int, int]]:
    """Send in order; the (topic, partition, offset) of each."""
    producer = make_producer(bootstrap)
    futures = [producer.send(topics.topic(t), key=k, value=v) for t, k, v in messages]
    producer.flush()
    meta = [f.get(timeout=30) for f in futures]
    producer.close()
    return [(m.topic, m.partition, m.offset) for m in meta]


def _rows(table: pa.Table, runners: set[str], sort: list[str]) -> list[dict]:
    rows = [r for r in table.to_pylist() if r["runner_id"] in runners]
    return sorted(rows, key=lambda r: tuple(str(r[c]) for c in sort))


def _lake(paths: Paths, runners: set[str]) -> dict[str, list[dict]]:
    return {
        "strides": _rows(read_table(paths.table("strides"), STRIDES), runners, ["stride_id"]),
        "watch_records": _rows(read_table(paths.table("watch_records"), WATCH_RECORDS), runners, ["device_id", "seq"]),
        "sessions": _rows(read_table(paths.table("sessions"), SESSIONS), runners, ["device_id", "seq"]),
    }  # fmt: skip


def assert_rows_equal(got: list[dict], want: list[dict], table: str) -> None:
    """Same rows, every column equal; floats to 1e-9 relative (where a batch is cut moves the last bits
    of the filtered signals, see tests/test_stream_job.py)."""
    assert len(got) == len(want), (table, len(got), len(want))
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys(), table
        for name, b in w.items():
            a = g[name]
            if isinstance(b, float) and isinstance(a, float):
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b)), (
                    table,
                    name,
                    a,
                    b,
                )
            else:
                assert a == b, (table, name, a, b)


@pytest.mark.timeout(600)
def test_malformed_messages_are_dead_lettered_with_their_reason(kafka: str, tmp_path) -> None:
    assert len(KINDS) >= 40 and len({k.name for k in KINDS}) == len(KINDS)
    assert {k.reason for k in KINDS} <= set(REASONS)
    sessions = fleet(n_runners=2, duration_s=30)
    good = {"r000", "r001"}
    good_events = [e for _, ev in sessions for e in ev] + [profile("r000"), profile("r001")]
    block = next(e for e in sessions[0][1] if isinstance(e, SensorBlock) and e.sensor == "foot_imu")
    last = max(
        (e for e in sessions[0][1] if isinstance(e, SensorBlock) and e.device_id == block.device_id),
        key=lambda e: e.seq,
    )
    # seq 0 again, but recorded after the device's last block: not a redelivery (new samples, reused number)
    reused = dataclasses.replace(block, start_time_us=last.end_time_us + 1_000_000)
    produce(kafka, good_events)
    clean = Paths(tmp_path / "clean").ensure()
    opts = dict(max_batch_bytes=300_000, workers=2)
    clean_dups = sum(
        r.counters.get("duplicates_dropped", 0)
        for r in run(StreamOptions(kafka, clean, **opts), until_idle_s=0.0)
    )
    want = _lake(clean, good)
    assert len(want["strides"]) > 2 * 60

    # the abuse, on the same topics after the good data (a second data dir reads everything from 0)
    ctx = {"block": block, "reused": reused}
    sent: dict[str, tuple[str, int, int]] = {}
    for kind in KINDS:
        coords = _send(kafka, kind.messages(ctx))
        sent[kind.name] = coords[-1]  # the bad message is the last one of its kind
    reality = [
        one(B, block),  # an exact redelivery of a block already read
        one(W, watch("d01", 0, NOW_US + 10 * 60_000_000)),  # drift within the 15 min limit
        one(D, DeadLetter("corrupt_file", "bad CRC", "import-fit", b"FIT", T0, source_file="a.fit")),
        one(P, profile("r000", seq=2, updated_at_us=T0 + 1, cohort="club b")),
    ]
    _send(kafka, [m for msgs in reality for m in msgs])
    assert NOW_US + 10 * 60_000_000 < NOW_US + MAX_FUTURE_US

    paths = Paths(tmp_path / "abused").ensure()
    results = run(StreamOptions(kafka, paths, **opts), until_idle_s=0.0)
    assert all(r.reconciles for r in results), [r.counters for r in results if not r.reconciles]
    counters: dict[str, int] = {}
    for r in results:
        for k, v in r.counters.items():
            counters[k] = counters.get(k, 0) + v

    # per kind: one dead letter with its reason at the bad message's coordinates
    dead = {d["dead_letter_id"]: d for d in read_table(paths.table("dead_letters"), DEAD_LETTERS).to_pylist()}
    wrong = {}
    for kind in KINDS:
        topic, part, off = sent[kind.name]
        letter = dead.get(f"{topic}:{part}:{off}")
        if letter is None or letter["reason"] != kind.reason:
            wrong[kind.name] = (kind.reason, letter and (letter["reason"], letter["detail"]))
        elif letter["stage"] != "stream" or not letter["detail"]:
            wrong[kind.name] = ("a stream letter with a detail", letter)
    assert not wrong, wrong
    stream_letters = [d for d in dead.values() if d["stage"] == "stream"]
    assert len(stream_letters) == len(KINDS), sorted(d["reason"] for d in stream_letters)
    # what a letter may carry: no contact data, no 10 kB id, no control characters
    for d in dead.values():
        text = f"{d['detail']} {d['runner_id']} {d['device_id']} {d['session_id']}"
        assert "jane" not in text.lower() and "7700" not in text and len(text) < 400 and "\x00" not in text
    assert not any(b"jane.doe" in (d["original"] or b"") for d in dead.values())

    # legitimate device reality: accepted and counted as such
    upstream = [d for d in dead.values() if d["stage"] == "import-fit"]
    assert [d["reason"] for d in upstream] == ["corrupt_file"]
    assert counters["duplicates_dropped"] == clean_dups + 1
    assert counters["upstream_dead_letters_archived"] == 1
    # the job's own letters came back from the topic and were recognised; the forged one was not
    assert counters["own_dead_letters_skipped"] == len(KINDS)  # the unverified letter's own letter too
    assert counters["dead_letters_unverified_dead_letter"] == 1

    # counts: every message in the topics was read once and is accepted, a duplicate or a dead letter
    n_in = sum(topic_counts(kafka, [topics.topic(k) for k in INPUT_TOPIC_KEYS]).values())
    assert counters["messages_in"] == n_in
    dead_counted = sum(v for k, v in counters.items() if k.startswith("dead_letters_"))
    assert dead_counted == len(KINDS)

    # the good runners' tables are those of the clean run, row for row, every column
    got = _lake(paths, good)
    for table, rows in want.items():
        assert_rows_equal(got[table], rows, table)
    drift = read_table(paths.table("watch_records"), WATCH_RECORDS).to_pylist()
    assert [r["runner_id"] for r in drift if r["runner_id"] not in good and r["runner_id"] != "x48"] == [
        "d01"
    ]
    # no runner exists only because a bad message named it; the profile update won
    runners = read_table(paths.table("runners"), RUNNERS, partition_cols=()).to_pylist()
    assert {r["runner_id"]: r["cohort"] for r in runners} == {"r000": "club b", "r001": "club"}
    assert {r["runner_id"] for r in read_table(paths.table("strides"), STRIDES).to_pylist()} == good
    figures = {
        "kinds tried": len(KINDS) + len(ACCEPTED),
        "dead-lettered": len(KINDS),
        "accepted": len(ACCEPTED),
    }
    print("bad-input suite:", figures, "accepted as:", ACCEPTED)
