"""Results do not depend on where the input is cut: the same simulated fleet streamed as one pass and
cut into batches at random points (random byte caps, one or two shards) gives identical strides and
dead-letter tables, every column. The fleet has the simulator's device realities: clock offsets, drops,
duplicates, out-of-order blocks and dying batteries."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from table_equality import assert_tables_equal

from infra.settings import Paths
from jobs.simulate.fleet import simulate_fleet
from jobs.stream_driver import StreamOptions, run
from pipelines.lake import read_table
from schemas.tables import DEAD_LETTERS, STRIDES


def _stream(kafka: str, root, max_batch_bytes: int, workers: int):
    paths = Paths(root).ensure()
    results = run(
        StreamOptions(kafka, paths, max_batch_bytes=max_batch_bytes, workers=workers), until_idle_s=0.0
    )
    assert all(r.reconciles for r in results), [r.counters for r in results if not r.reconciles]
    strides = read_table(paths.table("strides"), STRIDES)
    dead = read_table(paths.table("dead_letters"), DEAD_LETTERS)
    return len(results), strides, dead


@pytest.mark.timeout(600)
def test_random_cuts_give_the_tables_of_one_pass(kafka: str, tmp_path) -> None:
    sim = Paths(tmp_path / "sim").ensure()
    simulate_fleet(kafka, sim, 3, 1, start=dt.date(2026, 3, 2), seed=11, progress=False, duration_scale=0.06)
    n, want_strides, want_dead = _stream(kafka, tmp_path / "one", 1 << 40, 1)
    assert n == 1 and want_strides.num_rows > 500
    sensors = set(want_strides["sensors"].to_pylist())
    assert "foot_imu,pelvis_imu,emg" in sensors  # the joins are exercised
    rng = np.random.default_rng(5)
    caps = sorted(int(x) for x in rng.uniform(150_000, 3_000_000, 3))
    for i, cap in enumerate(caps):
        n, strides, dead = _stream(kafka, tmp_path / f"cut{i}", cap, 1 + i % 2)
        assert n > 1, cap
        assert_tables_equal(strides, want_strides, "stride_id")
        assert_tables_equal(dead, want_dead, "dead_letter_id")
