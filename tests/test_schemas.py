"""Codec contract: every event kind round-trips, old versions still decode, bad bytes fail with a reason code."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import registry
from schemas.codec import DecodeError, decode, decode_record, encode, encode_record, read_header
from schemas.events import (
    EVENT_TYPES,
    IMU_CHANNELS,
    DeadLetter,
    RunnerProfile,
    SensorBlock,
    SessionMarker,
    WatchRecord,
)

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
TIME_US = st.integers(0, 4_102_444_800_000_000)  # up to 2100
TEXT = st.text(max_size=30)
ID = st.text(min_size=1, max_size=20)
DOUBLE = st.floats(allow_nan=False)  # NaN != NaN would make dataclass equality meaningless
OPT_DOUBLE = st.none() | DOUBLE

hyp = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def sensor_blocks(draw) -> SensorBlock:
    n = draw(st.integers(0, 300))
    names = draw(st.lists(TEXT, min_size=0, max_size=12, unique=True))
    f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
    channels = {
        name: np.asarray(draw(st.lists(f32, min_size=n, max_size=n)), dtype=np.float32) for name in names
    }
    return SensorBlock(
        runner_id=draw(ID),
        device_id=draw(ID),
        session_id=draw(ID),
        seq=draw(INT64),
        sensor=draw(st.sampled_from(["foot_imu", "pelvis_imu", "emg"])),
        side=draw(st.sampled_from(["left", "right", "center"])),
        start_time_us=draw(INT64),
        sample_rate_hz=draw(DOUBLE),
        n_samples=draw(INT32),
        channels=channels,
        units={name: draw(TEXT) for name in names},
        battery_pct=draw(st.none() | INT32),
        firmware=draw(st.none() | TEXT),
    )


watch_records = st.builds(
    WatchRecord,
    runner_id=ID,
    device_id=ID,
    session_id=ID,
    seq=INT64,
    timestamp_us=INT64,
    heart_rate_bpm=st.none() | INT32,
    speed_m_s=OPT_DOUBLE,
    distance_m=OPT_DOUBLE,
    cadence_spm=OPT_DOUBLE,
    ground_contact_time_ms=OPT_DOUBLE,
    ground_contact_balance_left_pct=OPT_DOUBLE,
    vertical_oscillation_mm=OPT_DOUBLE,
    vertical_ratio_pct=OPT_DOUBLE,
    step_length_mm=OPT_DOUBLE,
    power_w=OPT_DOUBLE,
    altitude_m=OPT_DOUBLE,
    latitude_deg=OPT_DOUBLE,
    longitude_deg=OPT_DOUBLE,
    developer_fields=st.dictionaries(TEXT, DOUBLE, max_size=6),
)

session_markers = st.builds(
    SessionMarker,
    runner_id=ID,
    device_id=ID,
    session_id=ID,
    seq=INT64,
    timestamp_us=INT64,
    marker=st.sampled_from(["start", "end"]),
    source=st.sampled_from(["device", "simulator", "fit_import"]),
    sport=TEXT,
    sub_sport=st.none() | TEXT,
    sensors=st.lists(TEXT, max_size=5),
    total_elapsed_s=OPT_DOUBLE,
    total_distance_m=OPT_DOUBLE,
    avg_heart_rate_bpm=OPT_DOUBLE,
    avg_cadence_spm=OPT_DOUBLE,
)

runner_profiles = st.builds(
    RunnerProfile,
    runner_id=ID,
    seq=INT64,
    updated_at_us=INT64,
    cohort=TEXT,
    sex=st.sampled_from(["female", "male", "unknown"]),
    birth_year_band=TEXT,
    time_zone=TEXT,
    resting_hr_bpm=st.none() | INT32,
    max_hr_bpm=st.none() | INT32,
    device_id=TEXT,
    session_id=TEXT,
)

dead_letters = st.builds(
    DeadLetter,
    reason=TEXT,
    detail=TEXT,
    stage=TEXT,
    original=st.binary(max_size=2000),
    dead_lettered_at_us=INT64,
    runner_id=st.none() | TEXT,
    device_id=st.none() | TEXT,
    session_id=st.none() | TEXT,
    seq=st.none() | INT64,
    source_topic=st.none() | TEXT,
    source_partition=st.none() | INT32,
    source_offset=st.none() | INT64,
    source_file=st.none() | TEXT,
)


@hyp
@given(sensor_blocks())
def test_sensor_block_round_trip(block):
    data = encode(block)
    assert read_header(data) == ("sensor_block", registry.latest_version("sensor_block"))
    back = decode(data)
    assert back == block
    assert all(arr.dtype == np.float32 for arr in back.channels.values())
    assert list(back.channels) == list(block.channels)  # channel order kept


@hyp
@given(watch_records)
def test_watch_record_round_trip(rec):
    assert decode(encode(rec)) == rec


@hyp
@given(session_markers)
def test_session_marker_round_trip(marker):
    assert decode(encode(marker)) == marker


@hyp
@given(runner_profiles)
def test_runner_profile_round_trip(profile):
    assert decode(encode(profile)) == profile


@hyp
@given(dead_letters)
def test_dead_letter_round_trip(letter):
    assert decode(encode(letter)) == letter


def test_every_kind_with_a_dataclass_is_covered():
    covered = {"sensor_block", "watch_record", "session_marker", "runner_profile", "dead_letter"}
    assert covered <= set(EVENT_TYPES)
    # every kind code in the registry has at least one shipped schema
    for kind in registry.KIND_CODES:
        assert registry.versions(kind), kind


def _imu_block(**over) -> SensorBlock:
    n = 8
    base = dict(
        runner_id="r1",
        device_id="foot-l-1",
        session_id="s1",
        seq=3,
        sensor="foot_imu",
        side="left",
        start_time_us=1_700_000_000_000_000,
        sample_rate_hz=204.8,
        n_samples=n,
        channels={c: np.arange(n, dtype=np.float32) + i for i, c in enumerate(IMU_CHANNELS)},
        units=dict(IMU_CHANNELS),
    )
    base.update(over)
    return SensorBlock(**base)


def _encode_v1(block: SensorBlock) -> bytes:
    """``block`` written with sensor_block schema v1 (no battery or firmware)."""
    rec = {
        name: getattr(block, name) for name in registry.field_names("sensor_block", 1) if name != "channels"
    }
    rec["channels"] = [
        {"name": k, "unit": block.units[k], "data": v.astype("<f4").tobytes()}
        for k, v in block.channels.items()
    ]
    return encode_record("sensor_block", rec, version=1)


def test_sensor_block_v1_still_decodes_with_the_current_reader():
    block = _imu_block()
    data = _encode_v1(block)
    assert read_header(data) == ("sensor_block", 1)
    back = decode(data)
    assert isinstance(back, SensorBlock)
    assert back.schema_version == 1
    assert back.battery_pct is None and back.firmware is None
    assert back.header_dict() | {"schema_version": 1} == block.header_dict() | {"schema_version": 1}
    for k, v in block.channels.items():
        np.testing.assert_array_equal(back.channels[k], v)
    # the resolved record has every field of the latest schema
    kind, version, resolved = decode_record(data)
    assert version == 1 and set(resolved) == set(registry.field_names("sensor_block"))


def test_sensor_block_v2_fields_survive():
    back = decode(encode(_imu_block(battery_pct=87, firmware="2.4.1")))
    assert (back.battery_pct, back.firmware, back.schema_version) == (87, "2.4.1", 2)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "bad_header"),
        (None, "bad_header"),  # a Kafka tombstone (null value)
        (b"GF\x01", "bad_header"),  # shorter than the 4-byte header
        (b"XX\x01\x02rest", "bad_header"),
        (b"PAR1....", "bad_header"),
        (b"GF\x63\x01body", "unknown_schema"),  # kind code 99
        (b"GF\x01\x09body", "unknown_schema"),  # sensor_block v9
        (b"GF\x02\x00body", "unknown_schema"),  # version 0
    ],
)
def test_bad_headers(data, reason):
    with pytest.raises(DecodeError) as exc:
        decode(data)
    assert exc.value.reason == reason
    assert exc.value.detail


@pytest.mark.parametrize(
    "event",
    [
        _imu_block(),
        WatchRecord("r", "w", "s", 1, 1_700_000_000_000_000, heart_rate_bpm=150, developer_fields={"x": 1.0}),
        SessionMarker("r", "w", "s", 0, 1_700_000_000_000_000, "start", "device"),
    ],
    ids=["sensor_block", "watch_record", "session_marker"],
)
def test_truncated_body_is_a_decode_error(event):
    data = encode(event)
    for cut in (len(data) - 1, len(data) // 2, 5):
        with pytest.raises(DecodeError) as exc:
            decode(data[:cut])
        assert exc.value.reason == "decode_error", cut


def test_header_only_is_a_decode_error():
    with pytest.raises(DecodeError) as exc:
        decode(b"GF\x02\x01")
    assert exc.value.reason == "decode_error"


def test_channel_bytes_not_float32_is_length_mismatch():
    block = _imu_block()
    rec = {name: getattr(block, name) for name in registry.field_names("sensor_block") if name != "channels"}
    rec["channels"] = [{"name": "acc_x", "unit": "m/s^2", "data": b"\x00\x00\x80"}]  # 3 bytes
    with pytest.raises(DecodeError) as exc:
        decode(encode_record("sensor_block", rec))
    assert exc.value.reason == "length_mismatch"


def test_decode_error_reasons_are_documented_reason_codes():
    from schemas.validate import REASONS

    assert {"bad_header", "unknown_schema", "decode_error", "length_mismatch"} <= set(REASONS)


def test_wire_header_layout():
    data = encode(WatchRecord("r", "w", "s", 1, 1_700_000_000_000_000))
    assert data[:2] == registry.MAGIC == b"GF"
    assert data[2] == registry.KIND_CODES["watch_record"]
    assert data[3] == registry.latest_version("watch_record")


def _stride_record(version: int) -> dict:
    rec = {}
    for f in registry.raw_schema("stride", version)["fields"]:
        t = f["type"]
        if isinstance(t, list):
            rec[f["name"]] = None
        elif t == "string":
            rec[f["name"]] = "x"
        elif t == "boolean":
            rec[f["name"]] = True
        else:  # ic_time / next_ic_time (long) and date (int)
            rec[f["name"]] = 1_700_000_000_000_000 if f["name"].endswith("_time") else 19_675
    rec["glute_share"] = 0.4
    return rec


def test_stride_v2_adds_posterior_chain_shares_and_v1_still_decodes():
    assert registry.latest_version("stride") == 2
    v1, v2 = registry.field_names("stride", 1), registry.field_names("stride")
    assert [n for n in v2 if n not in v1] == ["hamstring_share", "calf_share"]
    assert v2.index("hamstring_share") == v2.index("glute_share") + 1
    # a v1 message (written before the shares existed) resolves with both null
    kind, version, rec = decode_record(encode_record("stride", _stride_record(1), version=1))
    assert (kind, version, rec["glute_share"]) == ("stride", 1, 0.4)
    assert rec["hamstring_share"] is None and rec["calf_share"] is None
    # v2 round trip keeps them
    new = _stride_record(2) | {"hamstring_share": 0.27, "calf_share": 0.33}
    kind, version, rec = decode_record(encode_record("stride", new))
    assert version == 2 and (rec["hamstring_share"], rec["calf_share"]) == (0.27, 0.33)
    # the topic schema mirrors the lake table
    from schemas.tables import STRIDES

    assert set(v2) == set(STRIDES.names)
