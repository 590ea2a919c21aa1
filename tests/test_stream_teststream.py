"""The stream composite under TestStream, in the style of Beam's game examples: the test applies
:class:`SessionStrides` (the composite every execution runs) to a TestStream on the Python DirectRunner
in streaming mode (Beam state and event-time timers), with elements in small bundles and watermark
advances on Kafka record time, and checks the outputs with ``assert_that`` against the offline
whole-session computation (:func:`process_session` over all events at once, closed at the end)."""

from __future__ import annotations

import dataclasses

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that
from apache_beam.utils.timestamp import Timestamp
from test_stream_job import T0, assert_same_strides, offline

from pipelines.stream.sessionize import StreamParams
from pipelines.stream.synthetic import make_session
from pipelines.stream.transforms import SessionStrides
from schemas.codec import encode
from schemas.events import SensorBlock, SessionMarker, WatchRecord

TOPIC = {SensorBlock: "sensor-blocks", SessionMarker: "sessions", WatchRecord: "watch-records"}
GAP_S = StreamParams().session_gap_s


def messages(events, arrival_ms: list[int] | None = None, partition: int = 0) -> list[tuple]:
    """Kafka record tuples (topic, partition, offset, key, value, record time ms) in arrival order:
    10 ms apart unless ``arrival_ms`` gives each record's time."""
    offsets: dict[str, int] = {}
    out = []
    for i, e in enumerate(events):
        topic = TOPIC[type(e)]
        off = offsets[topic] = offsets.get(topic, -1) + 1
        ts = arrival_ms[i] if arrival_ms is not None else T0 // 1000 + 10 * i
        out.append((topic, partition, off, e.runner_id.encode(), encode(e), ts))
    return out


def stream_of(
    msgs: list[tuple],
    per_bundle: int = 7,
    final_watermark_s: float | None = None,
    ts: TestStream | None = None,
) -> TestStream:
    """Bundles of ``per_bundle`` records, each followed by a watermark advance to its newest record
    time; then to ``final_watermark_s`` (record time; ``None``: past the quiet gap, then to infinity).

    Time passes beyond the quiet gap before the stream ends: outputs of timers that first fire when the
    watermark jumps to infinity reach ``assert_that``'s GroupByKey after its global window closed (the
    DirectRunner holds no output watermark for pending timers) and would be dropped."""
    ts = ts or TestStream()
    for k in range(0, len(msgs), per_bundle):
        chunk = msgs[k : k + per_bundle]
        newest = max(m[5] for m in chunk) / 1000
        ts = ts.add_elements([beam.window.TimestampedValue(chunk, newest)])
        if Timestamp.of(newest) > ts.watermarks[None]:  # TestStream's watermark must strictly advance
            ts = ts.advance_watermark_to(newest)
    if final_watermark_s is not None:
        return ts.advance_watermark_to(final_watermark_s)
    newest = max(m[5] for m in msgs) / 1000
    return ts.advance_watermark_to(newest + GAP_S + 1).advance_watermark_to_infinity()


def rows_us(table) -> list[dict]:
    """Table rows with timestamps as int microseconds (the events' own unit)."""
    import pyarrow as pa

    cols = {
        n: (c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c)
        for n, c in zip(table.column_names, table.columns, strict=True)
    }
    return pa.table(cols).to_pylist()


@pytest.fixture(params=["DirectRunner", "PrismRunner"])
def beam_options(request) -> PipelineOptions:
    """The Python DirectRunner in streaming mode, and Prism where ``make prism`` has built it."""
    if request.param == "DirectRunner":
        return PipelineOptions(streaming=True)
    from infra.runners import RunnerUnavailable, prism_options

    try:
        return prism_options()
    except RunnerUnavailable as exc:
        pytest.skip(f"Prism is not installed here: {exc}")


def run_composite(options: PipelineOptions, stream: TestStream, checks: dict) -> None:
    """Apply the composite to ``stream`` and ``assert_that`` each named output with its check."""
    with beam.Pipeline(options=options) as p:
        out = p | stream | SessionStrides()
        strides = out["strides"] | "StrideRows" >> beam.FlatMap(rows_us)
        dead = out["dead_letters"] | "DeadRows" >> beam.FlatMap(lambda rows: rows)
        if "strides" in checks:
            assert_that(strides, checks["strides"], label="CheckStrides")
        if "dead" in checks:
            assert_that(dead, checks["dead"], label="CheckDead")
        if "emitted_at" in checks:  # the output timestamps (record time) of the stride tables
            times = out["strides"] | "EmittedAt" >> beam.Map(lambda _, t=beam.DoFn.TimestampParam: t.micros)
            assert_that(times, checks["emitted_at"], label="CheckEmittedAt")


def same_as_offline(sessions):
    want = offline(sessions)

    def check(rows):
        ids = [r["stride_id"] for r in rows]
        assert len(ids) == len(set(ids)), "a stride was emitted twice"
        assert_same_strides({r["stride_id"]: r for r in rows}, want)

    return check


def reasons(*expected: str):
    def check(rows):
        assert sorted(r["reason"] for r in rows) == sorted(expected), [
            (r["reason"], r["detail"]) for r in rows
        ]

    return check


def session(rid: str = "r1", duration_s: int = 30, seed: int = 1, start_us: int = T0):
    truth, blocks, markers = make_session(rid, f"{rid}-s1", start_us, duration_s, seed=seed)
    return truth, blocks, markers


def test_out_of_order_blocks_and_duplicates_equal_the_offline_computation(beam_options) -> None:
    truth, blocks, markers = session()
    events = [markers[0], *blocks, markers[1]]
    rng = np.random.default_rng(3)
    for i in rng.choice(np.arange(5, len(events) - 10), 8, replace=False):  # out of order within lateness
        events[i], events[i + 3] = events[i + 3], events[i]
    shuffled = list(events)
    events += [events[10], events[40], events[41]]  # exact duplicates, delivered again later
    run_composite(
        beam_options,
        stream_of(messages(events)),
        {"strides": same_as_offline([(truth, shuffled)]), "dead": reasons()},
    )


def test_a_block_later_than_the_allowed_lateness_is_dead_lettered_late(beam_options) -> None:
    truth, blocks, markers = session(duration_s=80)
    held = next(b for b in blocks if b.sensor == "foot_imu" and b.seq == 5)
    rest = [b for b in blocks if b is not held]
    events = [markers[0], *rest, held, markers[1]]  # 70 s of its unit's data after its successors

    def no_stride_across_the_hole(rows):
        side = [r for r in rows if r["foot"] == held.side]
        assert len(side) > 40
        assert not any(
            r["ic_time"] < held.end_time_us and r["next_ic_time"] > held.start_time_us for r in side
        )

    run_composite(
        beam_options,
        stream_of(messages(events)),
        {"strides": no_stride_across_the_hole, "dead": reasons("late")},
    )


def test_a_gap_inside_a_unit_splits_its_strides(beam_options) -> None:
    truth, blocks, markers = session(duration_s=40)
    lost = {b.seq for b in blocks if b.sensor == "foot_imu" and b.side == "left" and 15 <= b.seq <= 17}
    kept = [b for b in blocks if not (b.sensor == "foot_imu" and b.side == "left" and b.seq in lost)]
    gap = (T0 + 15_000_000, T0 + 18_000_000)
    events = [markers[0], *kept, markers[1]]

    def check(rows):
        same_as_offline([(truth, events)])(rows)
        left = [r for r in rows if r["foot"] == "left"]
        assert not any(r["ic_time"] < gap[1] and r["next_ic_time"] > gap[0] for r in left)
        assert any(r["ic_time"] >= gap[1] for r in left) and any(r["next_ic_time"] <= gap[0] for r in left)

    run_composite(beam_options, stream_of(messages(events)), {"strides": check, "dead": reasons()})


def test_session_closed_by_its_end_marker_rejects_later_blocks(beam_options) -> None:
    truth, blocks, markers = session()
    extra = dataclasses.replace(blocks[-1], seq=10_000)  # a new block after the session ended
    events = [markers[0], *blocks, markers[1], extra]
    run_composite(
        beam_options,
        stream_of(messages(events)),
        {"strides": same_as_offline([(truth, [markers[0], *blocks, markers[1]])]), "dead": reasons("late")},
    )


def test_session_without_end_marker_is_closed_by_the_quiet_gap_timer(beam_options) -> None:
    """No end marker: the watermark passing the quiet gap (record time) closes the session and flushes
    its last strides; a block of it that arrives after the gap is late."""
    truth, blocks, markers = session()
    blocks = [b for b in blocks if b.end_time_us <= T0 + 28_000_000]  # its last strides need the close
    events = [markers[0], *blocks]
    arrival = [T0 // 1000 + 10 * i for i in range(len(events))]
    straggler = dataclasses.replace(blocks[-1], seq=10_000)
    late_ms = arrival[-1] + int((GAP_S + 5) * 1000)
    msgs = messages([*events, straggler], [*arrival, late_ms])
    ts = stream_of(msgs[:-1], final_watermark_s=(arrival[-1] + (GAP_S + 1) * 1000) / 1000)
    ts = stream_of(msgs[-1:], ts=ts)  # the straggler, after the timer has fired

    def closed_by_the_timer(times_us):
        # the last strides left with a timer's output time, past the last data and before the straggler
        # (the DirectRunner stamps them with the quiet-gap time itself, Prism a few records earlier)
        assert arrival[-1] * 1000 < max(times_us) < late_ms * 1000

    checks = {"strides": same_as_offline([(truth, events)]), "dead": reasons("late")}
    run_composite(beam_options, ts, {**checks, "emitted_at": closed_by_the_timer})


def test_a_dying_battery_does_not_hold_the_session_open(beam_options) -> None:
    """The pelvis IMU dies 10 s in: its unit stops, the feet's strides go on without pelvis features
    and the session closes at its end marker with every stride of the offline computation."""
    truth, blocks, markers = session(duration_s=90)
    dead_at = T0 + 10_000_000
    events = [
        markers[0],
        *(b for b in blocks if b.sensor != "pelvis_imu" or b.end_time_us <= dead_at),
        markers[1],
    ]

    def check(rows):
        same_as_offline([(truth, events)])(rows)
        late = [r for r in rows if r["ic_time"] > dead_at + 70_000_000]
        assert late and all(r["pelvic_drop_deg"] is None and r["sensors"] == "foot_imu,emg" for r in late)

    run_composite(beam_options, stream_of(messages(events)), {"strides": check, "dead": reasons()})


def test_strides_straddling_bundles_are_emitted_exactly_once(beam_options) -> None:
    truth, blocks, markers = session(duration_s=40)
    events = [markers[0], *blocks, markers[1]]
    for per_bundle in (1, 3, 50):
        run_composite(
            beam_options,
            stream_of(messages(events), per_bundle=per_bundle),
            {"strides": same_as_offline([(truth, events)]), "dead": reasons()},
        )


def test_backlog_of_runners_sharing_a_partition_in_any_event_time_order_is_not_late(beam_options) -> None:
    """Runner B's whole session arrives after runner A's (same device times, one partition): behind
    A's data in event time, but B's blocks are judged on B's own units and record time."""
    a = session("ra", duration_s=60, seed=4)
    b = session("rb", duration_s=60, seed=5)
    events = [a[2][0], *a[1], a[2][1], b[2][0], *b[1], b[2][1]]
    sessions = [(a[0], [a[2][0], *a[1], a[2][1]]), (b[0], [b[2][0], *b[1], b[2][1]])]
    run_composite(
        beam_options, stream_of(messages(events)), {"strides": same_as_offline(sessions), "dead": reasons()}
    )


def simulated_session_events(seed: int) -> list:
    """The first session of the first simulated runner (fleet ``seed``) who wears every sensor."""
    import datetime as dt

    from jobs.simulate.fleet import iter_runner_events
    from jobs.simulate.traits import draw_traits

    for i in range(50):
        traits = draw_traits(seed=seed, runner_index=i)
        if {"pelvis_imu", "emg"} <= set(traits.sensors):
            for day in range(7):
                evs = list(
                    iter_runner_events(traits, dt.date(2026, 3, 2 + day), seed=seed, duration_scale=0.04)
                )
                if evs:
                    return [e for e in evs if e.session_id == evs[0].session_id]
    raise AssertionError("no simulated runner wears every sensor")


@pytest.mark.parametrize("seed", [0, 1])
def test_simulated_fleet_session_equals_the_offline_computation(seed: int, beam_options) -> None:
    """A session of the fleet simulator (clock offsets, drops, duplicates, out-of-order blocks,
    announced sensors in its start marker) through the composite equals the offline computation."""
    events = simulated_session_events(seed)
    assert {e.sensor for e in events if isinstance(e, SensorBlock)} >= {"foot_imu", "pelvis_imu", "emg"}
    arrival, now = [], 0  # sent as recorded: a record's time is its event's end (never earlier than the last)
    for e in events:
        now = max(now, (e.end_time_us if isinstance(e, SensorBlock) else e.timestamp_us) // 1000)
        arrival.append(now)
    run_composite(
        beam_options,
        stream_of(messages(events, arrival), per_bundle=11),
        {"strides": same_as_offline([(None, events)])},
    )
