"""Load formulas on tiny hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.science import load


def test_banister_trimp_hand_computed() -> None:
    # 10 min at HRr = 0.5 (HR 120, rest 60, max 180): male 10 * 0.5 * 0.64 e^(0.96)
    hr = np.full(600, 120.0)
    dt = np.ones(600)
    male = load.banister_trimp(hr, dt, 60, 180, "male")
    female = load.banister_trimp(hr, dt, 60, 180, "F")
    assert male == pytest.approx(10 * 0.5 * 0.64 * math.exp(1.92 * 0.5))
    assert female == pytest.approx(10 * 0.5 * 0.86 * math.exp(1.67 * 0.5))
    # the histogram form is the same sum
    hist = load.hr_histogram(hr, dt)
    assert load.banister_trimp_from_histogram(hist, 60, 180, "male") == pytest.approx(male)
    # HR below rest counts zero, above max is clipped to HRr = 1
    assert load.banister_trimp(
        np.array([50.0, 200.0]), np.array([60.0, 60.0]), 60, 180, "m"
    ) == pytest.approx(0.64 * math.exp(1.92))


def test_record_dt_caps_pauses() -> None:
    assert load.record_dt_s(np.array([0.0, 1.0, 2.0, 30.0])).tolist() == [1.0, 1.0, 5.0, 1.0]


def test_edwards_zones() -> None:
    # HRmax 200: 1 min each at 90 (<50 %), 110 (z1), 130 (z2), 150 (z3), 170 (z4), 190 (z5), 210 (z5)
    hr = np.array([90, 110, 130, 150, 170, 190, 210], dtype=float)
    assert load.edwards_trimp(hr, np.full(7, 60.0), 200) == pytest.approx(0 + 1 + 2 + 3 + 4 + 5 + 5)


def test_ewma_recurrence_and_truncation() -> None:
    loads = np.array([100.0, 0.0, 50.0])
    lam = 2 / 8
    e1 = lam * 100
    e2 = (1 - lam) * e1
    e3 = lam * 50 + (1 - lam) * e2
    assert load.ewma(loads, 7).tolist() == pytest.approx([e1, e2, e3])
    assert load.ewma_truncated(loads, 7, 90).tolist() == pytest.approx([e1, e2, e3])
    # truncated at horizon 2: day 3 forgets day 1
    assert load.ewma_truncated(loads, 7, 2)[2] == pytest.approx(lam * 50 + (1 - lam) * lam * 0)
    acute, chronic = load.acute_chronic(np.full(200, 10.0))
    assert acute[-1] == pytest.approx(10.0, rel=1e-3) and chronic[-1] == pytest.approx(10.0, rel=1e-2)
    assert load.acwr(np.array([1.0, 2.0]), np.array([0.0, 4.0]))[1] == 0.5
    assert np.isnan(load.acwr(np.array([1.0]), np.array([0.0]))[0])


def test_monotony_and_strain() -> None:
    week = np.array([10.0, 20, 30, 40, 50, 60, 70])
    weekly, mono, strain = load.monotony_strain(week)
    sd = np.std(week, ddof=1)
    assert weekly[-1] == 280
    assert mono[-1] == pytest.approx(40 / sd)
    assert strain[-1] == pytest.approx(280 * 40 / sd)
    # day 1: window is six rest days + 10
    first = np.array([0, 0, 0, 0, 0, 0, 10.0])
    assert mono[0] == pytest.approx(first.mean() / first.std(ddof=1))
    # identical loads: sd = 0 -> undefined
    _, m, s = load.monotony_strain(np.full(7, 5.0))
    assert np.isnan(m[-1]) and np.isnan(s[-1])


def test_session_spike() -> None:
    longest = np.zeros(40)
    longest[0] = 10_000
    longest[5] = 10_500  # 1.05: no spike
    longest[10] = 12_000  # 12000 / 10500 = 1.143: spike
    longest[39] = 5_000  # day 39: prev 30 days = days 9..38 -> 12000
    prev, ratio, flag = load.session_spike(longest)
    assert np.isnan(ratio[0]) and np.isnan(flag[0])  # no previous run: undefined
    assert ratio[5] == pytest.approx(1.05) and flag[5] == 0
    assert ratio[10] == pytest.approx(12_000 / 10_500) and flag[10] == 1
    assert prev[39] == 12_000 and ratio[39] == pytest.approx(5_000 / 12_000)
    assert flag[1] == 0 and np.isnan(ratio[1])  # rest day
    # day 41 would not see day 10 anymore (window of 30 days)
    prev2, _, _ = load.session_spike(np.concatenate([longest, [0.0, 1.0]]))
    assert prev2[41] == 5_000


def test_hr_params_sources() -> None:
    hist = load.hr_histogram(
        np.r_[np.full(3000, 150.0), np.full(30, 185.0), np.full(100, 95.0)], np.ones(3130)
    )
    p = load.hr_params(None, None, hist, 40.0)
    assert p.source == "estimated"
    assert p.max_bpm == max(185.0, 208 - 0.7 * 40)
    assert p.rest_bpm == 60.0  # observed P1 (95) capped at the population default
    assert load.hr_params(48, 188, hist, None) == load.HrParams(48.0, 188.0, "profile")
    assert load.hr_params(48, None, hist, None).source == "mixed"
    assert load.hr_params(None, None, np.zeros(load.HR_BINS), None) is None
    assert load.age_from_birth_year_band("1980-1989", 2024) == pytest.approx(39.5)
    assert load.age_from_birth_year_band("1980s", 2024) == pytest.approx(39.5)


def test_impact_load_in_g() -> None:
    assert load.impact_load_g(np.array([9.80665, 19.6133, np.nan])) == pytest.approx(3.0)


def test_row_wise_hr_params_and_trimp_equal_scalar_functions() -> None:
    """The many-days-at-once versions return bit-identical values to the per-day functions."""
    rng = np.random.default_rng(0)
    bpm = np.arange(load.HR_BINS)
    hist = np.array(
        [
            np.exp(-0.5 * ((bpm - rng.uniform(100, 185)) / rng.uniform(3, 15)) ** 2) * rng.uniform(0, 3000)
            for _ in range(60)
        ]
    )
    hist[:3] = 0.0
    hist[3, 150] = 300.0  # < 10 min of HR
    hist[4, [60, 140, 255]] = [1000.0, 1000.0, 1000.0]
    ages = rng.uniform(20, 60, len(hist))
    for rest, mx, age in (
        (None, None, ages),
        (None, None, None),
        (50.0, None, ages),
        (None, 185.0, None),
        (48, 190, ages),
    ):
        r, m, src, ok = load.hr_params_rows(rest, mx, hist, age)
        for i, h in enumerate(hist):
            p = load.hr_params(rest, mx, h, None if age is None else age[i])
            assert ok[i] == (p is not None)
            if p is None:
                continue
            assert (r[i], m[i], src) == (p.rest_bpm, p.max_bpm, p.source)
        for sex in ("male", "female", None):
            want = [
                load.banister_trimp_from_histogram(h, r[i], m[i], sex) for i, h in enumerate(hist) if ok[i]
            ]
            assert load.banister_trimp_rows(hist[ok], r[ok], m[ok], sex).tolist() == want
        want = [load.edwards_trimp_from_histogram(h, m[i]) for i, h in enumerate(hist) if ok[i]]
        assert load.edwards_trimp_rows(hist[ok], m[ok]).tolist() == want
