"""The validator at the door (one minimal bad event per reason code) and the Publisher against the real broker."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from infra import topics
from infra.inspect_topics import read_events, read_topic
from infra.publish import Publisher
from schemas.codec import decode
from schemas.events import (
    EMG_CHANNELS,
    IMU_CHANNELS,
    DeadLetter,
    RunnerProfile,
    SensorBlock,
    SessionMarker,
    WatchRecord,
)
from schemas.validate import (
    MAX_FUTURE_US,
    REASONS,
    SequenceTracker,
    check,
    check_envelope,
    check_marker_order,
    check_sequence_order,
)

NOW = 1_750_000_000_000_000  # fixed validator clock (2025-06-15)
T0 = NOW - 3_600_000_000
README = Path(__file__).resolve().parents[1] / "schemas" / "README.md"


def block(sensor: str = "foot_imu", n: int = 16, **over) -> SensorBlock:
    names = EMG_CHANNELS if sensor == "emg" else IMU_CHANNELS
    channels = {
        name: (np.full(n, 50.0) if sensor == "emg" else np.linspace(-9.81, 9.81, n)).astype(np.float32)
        for name in names
    }
    fields = dict(
        runner_id="r1",
        device_id=f"{sensor}-1",
        session_id="s1",
        seq=0,
        sensor=sensor,
        side="center" if sensor != "foot_imu" else "left",
        start_time_us=T0,
        sample_rate_hz=1000.0 if sensor == "emg" else 204.8,
        n_samples=n,
        channels=channels,
        units=dict(names),
    )
    fields.update(over)
    return SensorBlock(**fields)


def watch(**over) -> WatchRecord:
    fields = dict(
        runner_id="r1", device_id="watch-1", session_id="s1", seq=0, timestamp_us=T0, heart_rate_bpm=150
    )
    fields.update(over)
    return WatchRecord(**fields)


def marker(**over) -> SessionMarker:
    fields = dict(
        runner_id="r1",
        device_id="watch-1",
        session_id="s1",
        seq=0,
        timestamp_us=T0,
        marker="start",
        source="device",
    )
    fields.update(over)
    return SessionMarker(**fields)


def profile(**over) -> RunnerProfile:
    fields = dict(
        runner_id="r1",
        seq=1,
        updated_at_us=T0,
        cohort="club-a",
        sex="female",
        birth_year_band="1985-1989",
        time_zone="Europe/Berlin",
        resting_hr_bpm=48,
        max_hr_bpm=188,
    )
    fields.update(over)
    return RunnerProfile(**fields)


def with_channel(b: SensorBlock, name: str, values) -> SensorBlock:
    channels = dict(b.channels)
    channels[name] = np.asarray(values, dtype=np.float32)
    return dataclasses.replace(b, channels=channels)


VALID = {
    "foot_imu": block("foot_imu"),
    "pelvis_imu": block("pelvis_imu"),
    "emg": block("emg"),
    "watch": watch(),
    "watch_all_none": watch(heart_rate_bpm=None),
    "hr_25": watch(heart_rate_bpm=25),
    "hr_250": watch(heart_rate_bpm=250),
    "marker_end": marker(marker="end", total_elapsed_s=3600.0),
    "profile": profile(),
    "clock_skew_under_limit": watch(timestamp_us=NOW + MAX_FUTURE_US - 1_000_000),
    "id_64_chars": watch(runner_id="r" * 64, device_id="garmin-fr935-3912345678", session_id="fit-0a:1.x_y"),
    "profile_decade_band": profile(birth_year_band="1980s", cohort="Harbour Harriers (U20) 2019-2020"),
    "profile_10_year_band": profile(birth_year_band="1980-1989", sex="unknown", time_zone="UTC"),
    "dead_letter": DeadLetter("bad_header", "x", "stream", b"\x00", NOW),
}


@pytest.mark.parametrize("name", VALID)
def test_valid_events_pass(name):
    assert check(VALID[name], now_us=NOW) is None


BAD = [
    ("hr_251", watch(heart_rate_bpm=251), "out_of_range"),
    ("hr_24", watch(heart_rate_bpm=24), "out_of_range"),
    ("speed_nan", watch(speed_m_s=float("nan")), "out_of_range"),
    ("speed_str", watch(speed_m_s="fast"), "bad_type"),
    ("lat_91", watch(latitude_deg=91.0), "out_of_range"),
    ("foot_imu_5hz", block(sample_rate_hz=5.0), "bad_sample_rate"),
    ("emg_5000hz", block("emg", sample_rate_hz=5000.0), "bad_sample_rate"),
    ("channel_short", with_channel(block(), "acc_x", np.zeros(15)), "length_mismatch"),
    ("n_samples_wrong", block(n_samples=17), "length_mismatch"),
    ("nan_sample", with_channel(block(), "gyr_y", [np.nan] + [0.0] * 15), "non_finite"),
    ("inf_sample", with_channel(block(), "acc_z", [np.inf] + [0.0] * 15), "non_finite"),
    (
        "missing_channel",
        dataclasses.replace(block(), channels={"acc_x": np.zeros(16, np.float32)}),
        "bad_channels",
    ),
    ("unknown_sensor", block(sensor="knee_imu"), "bad_channels"),
    ("bad_side", block(side="up"), "out_of_range"),
    ("zero_samples", block(n=0), "out_of_range"),
    ("wrong_unit", block(units={**IMU_CHANNELS, "acc_x": "g"}), "out_of_range"),
    ("acc_saturated", with_channel(block(), "acc_x", [1000.0] * 16), "out_of_range"),
    ("emg_negative", with_channel(block("emg"), "gluteus_maximus_left", [-5.0] * 16), "out_of_range"),
    ("future_timestamp", watch(timestamp_us=NOW + MAX_FUTURE_US + 1_000_000), "future_timestamp"),
    ("future_block", block(start_time_us=NOW + 2 * MAX_FUTURE_US), "future_timestamp"),
    ("year_1999", watch(timestamp_us=915_148_800_000_000), "stale_timestamp"),
    ("float_time", watch(timestamp_us=float(T0)), "bad_type"),
    ("missing_runner", watch(runner_id=""), "missing_field"),
    ("blank_runner", block(runner_id="   "), "missing_field"),
    ("missing_device", marker(device_id=None), "missing_field"),
    ("missing_session", watch(session_id=""), "missing_field"),
    ("negative_seq", watch(seq=-1), "bad_sequence"),
    ("float_seq", watch(seq=1.5), "bad_type"),
    ("bool_seq", block(seq=True), "bad_type"),
    ("marker_kind", marker(marker="middle"), "out_of_range"),
    ("marker_elapsed", marker(marker="end", total_elapsed_s=-1.0), "out_of_range"),
    ("profile_no_cohort", profile(cohort=""), "missing_field"),
    ("profile_resting_hr", profile(resting_hr_bpm=10), "out_of_range"),
    ("not_an_event", object(), "unknown_schema"),
    ("id_65_chars", watch(runner_id="r" * 65), "bad_id"),
    ("id_10kb", block(session_id="s" * 10_000), "bad_id"),
    ("id_control_char", marker(device_id="watch\x00-1"), "bad_id"),
    ("id_newline", watch(runner_id="r1\nINFO forged log line"), "bad_id"),
    ("id_space", watch(session_id="s 1"), "bad_id"),
    ("id_email", profile(runner_id="jane.doe@example.com"), "contact_data"),
    ("id_phone", watch(runner_id="+49 176 1234 5678"), "contact_data"),
    ("cohort_email", profile(cohort="club of jane.doe@example.com"), "contact_data"),
    ("cohort_phone", profile(cohort="call +44 7700 900123"), "contact_data"),
    ("cohort_formula", profile(cohort="=cmd|' /C calc'!A0"), "out_of_range"),
    ("cohort_too_long", profile(cohort="c" * 65), "out_of_range"),
    ("profile_exact_year", profile(birth_year_band="1983"), "out_of_range"),
    ("profile_odd_band", profile(birth_year_band="1983-1987"), "out_of_range"),
    ("profile_sex_free_text", profile(sex="Jane Doe"), "out_of_range"),
    ("profile_zone", profile(time_zone="Mars/Olympus"), "out_of_range"),
    ("profile_zone_path", profile(time_zone="../../etc/passwd"), "out_of_range"),
    ("profile_cohort_int", profile(cohort=7), "bad_type"),
]

# the pure checks that need more than the event (the stream job's door and session state)
CONTEXT_BAD = [
    ("wrong_topic", check_envelope("t.blocks", "sensor_block", "watch_record", b"r1", b"r1"), "wrong_topic"),
    ("null_key", check_envelope("t.blocks", "sensor_block", "sensor_block", None, b"r1"), "bad_key"),
    ("other_key", check_envelope("t.blocks", "sensor_block", "sensor_block", b"r2", b"r1"), "bad_key"),
    ("seq_reset", check_sequence_order((500, T0 + 500), 3, T0 + 600), "sequence_backwards"),
    ("seq_reused", check_sequence_order((500, T0 + 500), 500, T0 + 501), "sequence_backwards"),
    ("end_no_start", check_marker_order(None, None, "end", T0), "session_order"),
    ("end_before_start", check_marker_order(T0, None, "end", T0 - 1), "session_order"),
    ("start_after_end", check_marker_order(T0, T0 + 10, "start", T0 + 11), "session_order"),
]
CONTEXT_OK = [
    ("envelope_ok", check_envelope("t.blocks", "sensor_block", "sensor_block", b"r1", b"r1")),
    ("any_kind_topic", check_envelope("t.x", None, "watch_record", b"r1", b"r1")),
    ("first_seq", check_sequence_order(None, 7, T0)),
    ("seq_forward", check_sequence_order((5, T0), 6, T0 + 1)),
    ("duplicate", check_sequence_order((5, T0), 5, T0)),
    ("reordered", check_sequence_order((5, T0), 4, T0 - 1)),
    ("clock_stepped_back", check_sequence_order((5, T0), 6, T0 - 10)),
    ("end_after_start", check_marker_order(T0, None, "end", T0 + 1)),
    ("second_start", check_marker_order(T0, None, "start", T0)),
]


@pytest.mark.parametrize("name, rejection, reason", CONTEXT_BAD, ids=[b[0] for b in CONTEXT_BAD])
def test_context_checks_reject_with_their_reason(name, rejection, reason):
    assert rejection is not None and rejection.reason == reason and rejection.reason in REASONS
    assert rejection.detail


@pytest.mark.parametrize("name, rejection", CONTEXT_OK, ids=[b[0] for b in CONTEXT_OK])
def test_context_checks_pass_device_reality(name, rejection):
    assert rejection is None


def test_details_never_echo_contact_data_or_huge_ids():
    for event in (profile(runner_id="jane.doe@example.com"), profile(cohort="jane.doe@example.com")):
        assert "jane" not in check(event, now_us=NOW).detail
    detail = check(block(session_id="s" * 10_000), now_us=NOW).detail
    assert len(detail) < 200 and "10000 chars" in detail
    assert "\n" not in check(watch(runner_id="r1\nINFO x"), now_us=NOW).detail


@pytest.mark.parametrize("name, event, reason", BAD, ids=[b[0] for b in BAD])
def test_each_bad_event_is_rejected_with_its_reason(name, event, reason):
    rejection = check(event, now_us=NOW)
    assert rejection is not None, name
    assert rejection.reason == reason, rejection
    assert rejection.reason in REASONS
    assert rejection.detail


def test_every_reason_code_is_documented():
    text = README.read_text()
    for code in REASONS:
        assert f"`{code}`" in text, f"reason code {code} missing from schemas/README.md"


def test_check_reason_codes_are_covered_here():
    """Every reason the validator itself can return is triggered by a case above."""
    produced = {reason for _, _, reason in BAD} | {reason for _, _, reason in CONTEXT_BAD}
    from_validator = {
        "missing_field",
        "bad_type",
        "out_of_range",
        "bad_sample_rate",
        "length_mismatch",
        "bad_channels",
        "non_finite",
        "future_timestamp",
        "stale_timestamp",
        "bad_sequence",
        "unknown_schema",
    }
    assert from_validator <= produced
    source = (Path(__file__).resolve().parents[1] / "schemas" / "validate.py").read_text()
    returned = set(re.findall(r'Rejection\(\s*"([a-z_]+)"', source))
    assert returned <= produced, returned - produced


def test_sequence_tracker():
    t = SequenceTracker()
    assert [t.observe("d1", s) for s in (0, 1, 2, 2, 5, 4)] == [
        "new",
        "new",
        "new",
        "duplicate",
        "new",
        "out_of_order",
    ]
    assert t.gaps == 1  # 3 is missing
    assert t.observe("d2", 0) == "new"  # per device
    assert t.gaps == 1


# --------------------------------------------------------------------- Publisher against the real broker


def test_publisher_counts_reconcile_and_dead_letters_carry_the_original(kafka):
    good = [
        watch(seq=0),
        watch(seq=1, runner_id="r2", device_id="watch-2"),
        block(seq=0),
        block("emg", seq=0),
        marker(seq=2),
        profile(),
    ]
    bad = [
        watch(seq=3, heart_rate_bpm=251),
        watch(seq=4, heart_rate_bpm=24),
        block(seq=1, sample_rate_hz=5.0),
        with_channel(block(seq=2), "acc_x", [np.nan] * 16),
        watch(seq=-1),
        watch(runner_id=""),
        block(seq=3, start_time_us=NOW + 2 * MAX_FUTURE_US),
    ]
    unencodable = watch(seq=9, heart_rate_bpm="fast")  # rejected and cannot even be encoded
    events = good[:3] + bad[:4] + good[3:] + bad[4:] + [unencodable]

    with Publisher(kafka, stage="test", now_us=NOW) as pub:
        rejections = [pub.publish(e) for e in events]
    counts = pub.counts
    assert counts.received == len(events) == counts.accepted + counts.dead_lettered
    assert counts.reconciles()
    assert counts.accepted == len(good)
    assert counts.dead_lettered == len(bad) + 1
    assert sum(r is not None for r in rejections) == counts.dead_lettered

    # what reached Kafka matches the counts, topic by topic
    assert len(read_events(kafka, "watch_records")) == 2
    assert len(read_events(kafka, "sensor_blocks")) == 2
    assert len(read_events(kafka, "sessions")) == 1
    assert len(read_events(kafka, "runner_profiles")) == 1
    letters = read_events(kafka, "dead_letters")
    assert len(letters) == counts.dead_lettered
    assert sum(len(read_events(kafka, k)) for k in topics.declared()) == counts.received

    # accepted events come back equal and keyed by runner
    for _, _, key, value in read_topic(kafka, topics.topic("watch_records")):
        assert key == decode(value).runner_id.encode()
    assert sorted(read_events(kafka, "sensor_blocks"), key=lambda b: b.sensor) == sorted(
        good[2:4], key=lambda b: b.sensor
    )

    # each dead letter: reason, detail, stage, and original bytes decoding to the rejected event
    expected = {id(e): check(e, now_us=NOW) for e in bad}
    by_seq_reason = {}
    for letter in letters:
        assert isinstance(letter, DeadLetter)
        assert letter.reason in REASONS and letter.detail and letter.stage == "test"
        if letter.reason == "bad_type":
            assert b"fast" in letter.original  # unencodable: a readable repr is kept instead
            continue
        original = decode(letter.original)
        by_seq_reason[(type(original).__name__, original.seq, letter.reason)] = original
    for e in bad:
        key = (type(e).__name__, e.seq, expected[id(e)].reason)
        assert key in by_seq_reason, key
        assert by_seq_reason[key] == e
    assert sorted(counts.by_reason.elements()) == sorted(letter.reason for letter in letters)


def test_channel_checks_of_many_blocks_at_once_equal_check_block_by_block():
    """check_block_bodies (one reduceat per group of like blocks) answers what check() answers for each
    block, reason and detail, however good and bad blocks of several sensors are interleaved."""
    from pipelines.stream.synthetic import make_session
    from schemas.block_reader import read_block
    from schemas.codec import encode
    from schemas.validate import check_block_bodies

    _, blocks, _ = make_session("r1", "r1-s1", T0, 6, seed=2)

    def spoiled(b: SensorBlock, name: str, value: float) -> SensorBlock:
        channels = {k: v.copy() for k, v in b.channels.items()}
        channels[name][len(channels[name]) // 2] = value
        return dataclasses.replace(b, channels=channels)

    foot = next(b for b in blocks if b.sensor == "foot_imu")
    emg = next(b for b in blocks if b.sensor == "emg")
    bad = [
        spoiled(foot, "acc_x", np.nan),
        spoiled(foot, "gyr_z", np.inf),
        spoiled(foot, "acc_y", 1e6),
        spoiled(emg, next(iter(emg.channels)), -5.0),
        dataclasses.replace(foot, units={**foot.units, "acc_x": "g"}),
        dataclasses.replace(foot, channels={k: v for k, v in foot.channels.items() if k != "gyr_x"}),
    ]
    mixed = [*blocks[:7], *bad[:3], *blocks[7:15], *bad[3:], *blocks[15:]]
    read = [read_block(encode(b)) for b in mixed]
    decoded = [r.block for r in read]
    stacked = [r.samples if i % 5 else None for i, r in enumerate(read)]  # some without stacked samples
    want = [check(b, now_us=NOW, samples=s) for b, s in zip(decoded, stacked, strict=True)]
    assert sum(w is not None for w in want) == len(bad)  # the spoiled ones, and only they, fail
    assert {w.reason for w in want if w} == {"non_finite", "out_of_range", "bad_channels"}
    assert check_block_bodies(decoded, stacked) == want
    assert check_block_bodies([], []) == []
