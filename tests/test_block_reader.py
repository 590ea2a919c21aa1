"""The fast sensor-block reader equals the general decoder, and steps aside for anything unusual."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from test_schemas import _encode_v1, _imu_block, hyp, sensor_blocks

from pipelines.stream.synthetic import make_session
from schemas import registry
from schemas.block_reader import read_block
from schemas.codec import DecodeError, decode, encode, encode_record
from schemas.events import SensorBlock
from schemas.validate import check


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
