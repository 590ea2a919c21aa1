"""The fast sensor-block reader equals the general decoder, and steps aside for anything unusual."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from test_schemas import _encode_v1, _imu_block, hyp, sensor_blocks

from pipelines.stream.synthetic import make_session
from schemas import registry
from schemas.block_reader import peek_block_header, read_block
from schemas.codec import DecodeError, decode, encode, encode_record
from schemas.events import SensorBlock
from schemas.validate import check, check_block_header


def _same(a: SensorBlock, b: SensorBlock) -> None:
    assert a.header_dict() == b.header_dict()
    assert a.schema_version == b.schema_version
    assert a.units == b.units and list(a.channels) == list(b.channels)
    for name, arr in a.channels.items():
        np.testing.assert_array_equal(b.channels[name], arr)
        assert b.channels[name].dtype == np.float32


@hyp
@given(sensor_blocks())
def test_fast_reader_equals_the_general_decoder(block):
    data = encode(block)
    fast = read_block(data)
    assert fast is not None  # equal-length channels, unique names: always the fast path
    _same(decode(data), fast.block)
    assert fast.samples.shape == (len(block.channels), len(next(iter(block.channels.values()), [])))
    assert fast.samples.tobytes() == fast.samples_bytes
    for row, arr in zip(fast.samples, fast.block.channels.values(), strict=True):
        assert arr.size == 0 or np.shares_memory(row, arr)  # channels are rows of the one array


def test_a_simulated_session_reads_the_same_on_both_paths_and_reuses_layouts():
    _, blocks, _ = make_session("r1", "r1-s1", 1_767_225_600_000_000, 5, seed=3)
    for block in blocks:
        data = encode(block)
        _same(decode(data), read_block(data).block)
        _same(decode(data), read_block(data).block)  # the second read goes through the cached layout


def test_a_changed_channel_name_behind_a_known_first_channel_is_not_misread():
    a = _imu_block()
    names = list(a.channels)
    renamed = {("acc_q" if n == names[1] else n): v for n, v in a.channels.items()}
    b = _imu_block(channels=renamed, units={n: "m/s^2" for n in renamed})
    read_block(encode(a))  # caches a's layout
    back = read_block(encode(b)).block
    assert list(back.channels) == list(renamed)
    _same(decode(encode(b)), back)


def test_version_1_blocks_take_the_fast_path_with_defaults():
    data = _encode_v1(_imu_block())
    fast = read_block(data)
    assert fast is not None and fast.block.schema_version == 1
    assert fast.block.battery_pct is None and fast.block.firmware is None
    _same(decode(data), fast.block)


def test_unusual_or_broken_messages_are_left_to_the_general_decoder():
    data = encode(_imu_block())
    for cut in range(4, len(data)):  # every truncation
        assert read_block(data[:cut]) is None
    assert read_block(data + b"\x00") is None  # trailing bytes
    assert read_block(b"GF\x01\x09" + data[4:]) is None  # unknown version
    assert read_block(encode(_imu_block(seq=1)).replace(b"GF\x01", b"XX\x01", 1)) is None
    # channels of different lengths: the general decoder reads them, the validator names the problem
    block = _imu_block()
    rec = {name: getattr(block, name) for name in registry.field_names("sensor_block") if name != "channels"}
    rec["channels"] = [
        {"name": k, "unit": block.units[k], "data": v[: 5 if k == "gyr_z" else None].astype("<f4").tobytes()}
        for k, v in block.channels.items()
    ]
    uneven = encode_record("sensor_block", rec)
    assert read_block(uneven) is None
    assert check(decode(uneven), now_us=block.start_time_us).reason == "length_mismatch"
    rec["channels"][0]["data"] = b"\x00\x00\x80"  # not float32s
    bad = encode_record("sensor_block", rec)
    assert read_block(bad) is None
    with pytest.raises(DecodeError):
        decode(bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e9])
def test_validation_with_the_stacked_samples_gives_the_same_verdict(value):
    good = _imu_block()
    fast = read_block(encode(good))
    now = good.start_time_us
    assert check(fast.block, now_us=now, samples=fast.samples) is None
    bad = _imu_block()
    bad.channels["gyr_y"] = bad.channels["gyr_y"].copy()
    bad.channels["gyr_y"][3] = value
    fast = read_block(encode(bad))
    verdict = check(fast.block, now_us=now, samples=fast.samples)
    assert verdict is not None
    assert verdict == check(decode(encode(bad)), now_us=now)


@hyp
@given(sensor_blocks())
def test_header_peek_equals_the_decoded_header(block):
    data = encode(block)
    header = peek_block_header(data)
    if block.sample_rate_hz > 0:
        decoded = decode(data)
        assert header._asdict() == {k: getattr(decoded, k) for k in header._fields}
        if check_block_header(header) is None:  # the job asks for the end time of valid headers only
            assert header.end_time_us == decoded.end_time_us
    else:
        assert header is None  # no end time without a positive rate: the full path decides


def test_header_peek_reads_v1_and_steps_aside_for_other_bytes():
    block = _imu_block()
    assert peek_block_header(_encode_v1(block)) == peek_block_header(encode(block))
    assert peek_block_header(encode(block)).end_time_us == block.end_time_us
    data = encode(block)
    cut = peek_block_header(data[:-100])  # a cut-off body still has its header (rejected after the shuffle)
    assert cut is not None and cut.seq == block.seq and read_block(data[:-100]) is None
    assert peek_block_header(data[:12]) is None  # cut inside the header
    assert peek_block_header(b"not a gluteflow message") is None and peek_block_header(None) is None
    marker = make_session("r1", "r1-s1", 1_767_225_600_000_000, 5, seed=3)[2][0]
    assert peek_block_header(encode(marker)) is None  # another kind


def test_header_check_agrees_with_the_full_check_on_header_faults():
    for change in (
        {"sample_rate_hz": 5.0},
        {"seq": -1},
        {"runner_id": " "},
        {"n_samples": 0},
        {"start_time_us": 2**62},
    ):
        block = dataclasses.replace(_imu_block(), **change)
        header = peek_block_header(encode(block))
        full = check(block)
        assert full is not None and check_block_header(header) == full
    assert check_block_header(peek_block_header(encode(_imu_block()))) is None
