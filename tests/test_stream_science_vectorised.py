"""The vectorised per-stride pelvis and EMG features equal their per-stride reference loops."""

import numpy as np

from pipelines.science.emg import _activation_onset_ms_loop, activation_onset_ms, stride_emg_means
from pipelines.science.pelvis import _stride_pelvis_features_loop, stride_pelvis_features


def _signal(seed: int, n: int = 3000, rate: float = 100.0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate + 12.3
    acc = np.column_stack(
        [
            np.sin(2 * np.pi * 1.4 * t),
            0.5 * np.cos(2 * np.pi * 1.4 * t),
            9.81 + 3 * np.sin(2 * np.pi * 2.8 * t),
        ]
    ) + rng.normal(0, 0.3, (n, 3))
    gyr = np.column_stack([20 * np.sin(2 * np.pi * 1.4 * t + 0.3), rng.normal(0, 5, n), rng.normal(0, 5, n)])
    return t, acc, gyr


def test_vectorised_equals_loop_with_gaps_edges_and_nan():
    t, acc, gyr = _signal(1)
    keep = np.ones(len(t), bool)
    keep[900:905] = False  # a sampling gap inside some strides
    t, acc, gyr = t[keep], acc[keep], gyr[keep]
    acc[1500, 2] = np.nan  # non-finite acc: VO NaN for that stride only
    gyr[2100, 0] = np.inf  # non-finite gyro: drop NaN for that stride only
    ic = np.arange(11.0, 44.0, 0.71)  # starts before and ends after the data
    nx = ic + 0.71
    tc = ic + 0.25
    tc[::5] = np.nan  # stance end unknown: first 40 % of the stride
    ic[7], nx[7] = 20.0, 20.02  # too short a stride
    for foot in ("left", "right"):
        got = stride_pelvis_features(t, acc, gyr, ic, tc, nx, foot, 0.015)
        ref = _stride_pelvis_features_loop(t, acc, gyr, ic, tc, nx, foot, 0.015)
        for g, r in zip(got, ref, strict=True):
            assert np.array_equal(np.isnan(g), np.isnan(r))
            assert np.allclose(g, r, rtol=0, atol=1e-9, equal_nan=True)
        assert np.isfinite(got[0]).sum() > 20


def test_vectorised_empty_and_short_inputs():
    t, acc, gyr = _signal(2, n=3)
    vo, drop = stride_pelvis_features(
        t, acc, gyr, np.array([12.3]), np.array([12.31]), np.array([12.4]), "left"
    )
    assert np.isnan(vo).all() and np.isnan(drop).all()
    t, acc, gyr = _signal(3)
    vo, drop = stride_pelvis_features(t, acc, gyr, np.empty(0), np.empty(0), np.empty(0), "right")
    assert len(vo) == len(drop) == 0


def test_emg_onset_bit_identical_and_means_equal_per_stride_mean():
    rng = np.random.default_rng(5)
    for trial in range(60):
        n = int(rng.integers(3, 3000))
        step = rng.choice([0.01, 0.01, 0.01, 0.05], n) if trial % 3 == 0 else np.full(n, 0.01)
        t = np.cumsum(step) + rng.uniform(0, 5)
        env = np.abs(rng.normal(50, 30, n)) + 20 * np.sin(t * 9)
        if trial % 7 == 0:
            env[rng.integers(0, n, 3)] = np.nan
        if trial % 11 == 0:
            env[:] = 5.0  # flat: p95 == p5, no onset
        m = int(rng.integers(0, 60))
        ic = np.sort(rng.uniform(t[0] - 2, t[-1] + 1, m))
        nx = ic + rng.uniform(0.01, 1.0, m)
        got = activation_onset_ms(t, env, ic, nx)
        assert np.array_equal(got, _activation_onset_ms_loop(t, env, ic, nx), equal_nan=True)
        means = stride_emg_means(t, env, ic, nx, 0.015)
        lo, hi = np.searchsorted(t, ic), np.searchsorted(t, nx)
        for k in np.flatnonzero(np.isfinite(means)):
            assert abs(means[k] - env[lo[k] : hi[k]].mean()) <= 1e-9 * max(1.0, abs(means[k]))
