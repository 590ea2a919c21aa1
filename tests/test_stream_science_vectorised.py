"""The vectorised per-stride pelvis and EMG features equal their per-stride reference loops."""

import numpy as np

from pipelines.science.emg import (
    ONSET_THRESHOLD_FRACTION,
    ONSET_WINDOW_FRACTION,
    _p5_p95,
    activation_onset_ms,
    stride_emg_means,
)
from pipelines.science.pelvis import pelvic_drop_deg, stride_pelvis_features, vertical_oscillation_mm

# --- per-stride reference implementations (the loops the vectorised functions replaced) ---


def _stride_pelvis_features_loop(
    t_s: np.ndarray,
    acc_m_s2: np.ndarray,
    gyr_deg_s: np.ndarray,
    ic_s: np.ndarray,
    tc_s: np.ndarray,
    ic_next_s: np.ndarray,
    foot: str,
    max_gap_s: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Vertical oscillation (mm) and pelvic drop (deg) for each stride ``[ic_s[k], ic_next_s[k])``.

    Strides not fully covered by pelvis samples, or with a sampling gap longer than ``max_gap_s``
    (default 1.5 sample periods), get NaN. All times in seconds on one clock. Per-stride reference of
    :func:`stride_pelvis_features`.
    """
    t = np.asarray(t_s, dtype=float)
    acc = np.asarray(acc_m_s2, dtype=float)
    gyr = np.asarray(gyr_deg_s, dtype=float)
    n = len(ic_s)
    vo = np.full(n, np.nan)
    drop = np.full(n, np.nan)
    if len(t) < 4:
        return vo, drop
    period = float(np.median(np.diff(t)))
    max_gap = max_gap_s if max_gap_s is not None else 1.5 * period
    lo = np.searchsorted(t, ic_s, side="left")
    hi = np.searchsorted(t, ic_next_s, side="left")
    for k in range(n):
        a, b = int(lo[k]), int(hi[k])
        if b - a < 4 or a == 0 and t[0] - ic_s[k] > max_gap or b >= len(t) and ic_next_s[k] - t[-1] > max_gap:
            continue
        seg_t = t[a:b]
        if (
            seg_t[0] - ic_s[k] > max_gap
            or ic_next_s[k] - seg_t[-1] > max_gap
            or (np.diff(seg_t) > max_gap).any()
        ):
            continue
        vo[k] = vertical_oscillation_mm(seg_t, acc[a:b])
        drop[k] = pelvic_drop_deg(seg_t, gyr[a:b], tc_s[k], foot)
    return vo, drop


def _activation_onset_ms_loop(
    t_s: np.ndarray,
    env_uV: np.ndarray,
    ic_s: np.ndarray,
    ic_next_s: np.ndarray,
    threshold_fraction: float = ONSET_THRESHOLD_FRACTION,
    window_fraction: float = ONSET_WINDOW_FRACTION,
) -> np.ndarray:
    """Onset of activation relative to IC, ms (negative = before IC), per stride.

    ``θ = p5 + f (p95 - p5)`` of the envelope over ``[IC - wT, IC_next - wT)``; onset = first sample pair
    ``env[i] < θ <= env[i+1]`` with ``t[i+1]`` in ``[IC - wT, IC + wT]``, at
    ``t_i + (θ - env_i) / (env_{i+1} - env_i) (t_{i+1} - t_i)``. NaN when there is no crossing.
    Per-stride reference of :func:`activation_onset_ms`.
    """
    t = np.asarray(t_s, dtype=float)
    env = np.asarray(env_uV, dtype=float)
    ic = np.asarray(ic_s, dtype=float)
    nxt = np.asarray(ic_next_s, dtype=float)
    out = np.full(len(ic), np.nan)
    if len(t) < 3:
        return out
    w_all = window_fraction * (nxt - ic)
    a_all = np.searchsorted(t, ic - w_all)
    b_all = np.searchsorted(t, nxt - w_all)
    hi_all = np.searchsorted(t, ic + w_all, side="left")
    for k in range(len(ic)):
        a, b = int(a_all[k]), int(b_all[k])
        if b - a < 4:
            continue
        p5, p95 = _p5_p95(env[a:b])
        if not p95 > p5:
            continue
        theta = p5 + threshold_fraction * (p95 - p5)
        lo, hi = a, int(hi_all[k])
        lo = max(lo, 1)
        if hi <= lo:
            continue
        prev, cur = env[lo - 1 : hi - 1], env[lo:hi]
        idx = np.flatnonzero((prev < theta) & (cur >= theta))
        if len(idx) == 0:
            continue
        i = lo + int(idx[0])
        frac = (theta - env[i - 1]) / (env[i] - env[i - 1])
        out[k] = 1000.0 * (t[i - 1] + frac * (t[i] - t[i - 1]) - ic[k])
    return out


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


def test_stride_feature_windows_equal_per_stride_nanmax_and_mean():
    """compute_stride_features' windowed peak impact and gyro bias equal the per-stride loops they
    replaced: windows past either end, empty windows, unused strides and NaN samples included."""
    from pipelines.science.stride_features import _window_mean, _window_nanmax

    rng = np.random.default_rng(7)
    x = rng.normal(10.0, 5.0, 500)
    x[100:110] = np.nan  # a window wholly inside is NaN; others partly
    lo = rng.integers(-20, 520, 400)
    hi = lo + rng.integers(-3, 40, 400)
    lo[:3], hi[:3] = [100, 95, 498], [110, 105, 530]
    use = rng.random(400) > 0.1
    peak, mean = _window_nanmax(x, lo, hi, use), _window_mean(np.nan_to_num(x), lo, hi, use)
    for k in range(400):
        a, b = np.clip([lo[k], hi[k]], 0, len(x))  # windows wholly before the start are empty
        seg = x[a:b]
        if not use[k] or not len(seg) or not np.isfinite(seg).any():
            assert np.isnan(peak[k]), k
        else:
            assert peak[k] == np.nanmax(seg), k
        seg0 = np.nan_to_num(x)[a:b]
        if not use[k] or not len(seg0):
            assert np.isnan(mean[k]), k
        else:
            np.testing.assert_allclose(mean[k], np.mean(seg0), rtol=1e-12, atol=1e-12)
