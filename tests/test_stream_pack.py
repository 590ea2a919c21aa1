"""The stream job's block packing across its shuffle (one bytes object of samples per block)."""

from __future__ import annotations

import pickle

import numpy as np

from pipelines.stream.synthetic import make_session
from pipelines.stream.transforms import pack_block, unpack_block
from schemas.codec import decode, encode


def test_unpack_of_pickled_pack_gives_the_decoded_block_back() -> None:
    _, blocks, _ = make_session("r1", "r1-s1", 1_767_225_600_000_000, 4, seed=1)
    assert {b.sensor for b in blocks} == {"foot_imu", "pelvis_imu", "emg"}
    for block in blocks:
        decoded = decode(encode(block))
        back = unpack_block(pickle.loads(pickle.dumps(pack_block(decoded))))
        assert back.header_dict() == decoded.header_dict()
        assert back.units == decoded.units and list(back.channels) == list(decoded.channels)
        for name, arr in decoded.channels.items():
            np.testing.assert_array_equal(back.channels[name], arr)
            assert back.channels[name].dtype == np.float32
