"""Gait-event detection and stride features: hand-made cases plus regression on gaitmap's real recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from pipelines.science.gait import GaitEvents, detect_gait_events
from pipelines.science.gait_eval import (
    evaluate_against_reference,
    evaluate_fixture,
    load_gaitmap_fixture,
    match_events,
)
from pipelines.science.stride_features import (
    FEATURE_COLUMNS,
    add_flight_time,
    compute_stride_features,
    flight_time_ms,
)

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
GAITMAP = FIXTURES / "gaitmap"
G = 9.81


# --------------------------------------------------------------------------------------------------------
# synthetic foot IMU in gaitmap's foot sensor frame, defined in continuous time
# --------------------------------------------------------------------------------------------------------
def _synthetic_gyr_y(t: np.ndarray, ic: np.ndarray, tc: np.ndarray, swing_deg_s: float) -> np.ndarray:
    """Sagittal gyro (deg/s) with IC at a negative->positive zero crossing and TC at the positive peak.

    Per cycle: foot-slap lobe ``+150 sin`` over [IC, IC + 60 ms]; flat stance; push-off rise
    ``P (1 - cos)/2`` over [TC - w1, TC]; fall ``P cos`` over [TC, TC + w2] (w1 = sqrt(2) w2 so the
    curvature is equal on both sides of the peak); swing lobe ``-A sin`` over [TC + w2, next IC].
    """
    g = np.zeros_like(t)
    push, w2 = 1.5 * swing_deg_s, 0.03
    w1 = np.sqrt(2.0) * w2
    for k in range(len(tc)):
        u = (t - (tc[k] - w1)) / w1
        m = (u >= 0) & (u <= 1)
        g[m] = push * (1 - np.cos(np.pi * u[m])) / 2
        u = (t - tc[k]) / w2
        m = (u > 0) & (u <= 1)
        g[m] = push * np.cos(0.5 * np.pi * u[m])
        start, end = tc[k] + w2, ic[k + 1]
        u = (t - start) / (end - start)
        m = (u > 0) & (u < 1)
        g[m] = -swing_deg_s * np.sin(np.pi * u[m])
    for k in range(len(ic)):
        u = (t - ic[k]) / 0.06
        m = (u >= 0) & (u <= 1)
        g[m] = 150.0 * np.sin(np.pi * u[m])
    return g


def synthetic_recording(fs: float, running: bool = True, n_strides: int = 12, seed: int = 0):
    """Foot IMU sampled at ``fs`` with known event times (s). Returns acc, gyr, ic_s, tc_s."""
    rng = np.random.default_rng(seed)
    stride, contact, swing = (0.72, 0.24, 700.0) if running else (1.1, 0.7, 350.0)
    dur = stride * (1 + 0.03 * rng.standard_normal(n_strides + 1))
    ic = 1.0 + np.concatenate([[0], np.cumsum(dur)])  # n_strides + 2 ICs
    tc = ic[:-1] + contact * (1 + 0.03 * rng.standard_normal(len(ic) - 1))
    t = np.arange(int((ic[-1] + 1.0) * fs)) / fs
    gyr = np.zeros((len(t), 3))
    gyr[:, 1] = _synthetic_gyr_y(t, ic, tc, swing)
    acc = np.zeros((len(t), 3))
    acc[:, 2] = G
    impact = 60.0 if running else 25.0
    for x in ic:
        acc[:, 2] += impact * np.exp(-0.5 * ((t - x - 0.015) / 0.010) ** 2)
    return acc, gyr, ic, tc


RATES = [100.0, 200.0, 204.8, 400.0]


@pytest.mark.parametrize("running", [True, False], ids=["running", "walking"])
@pytest.mark.parametrize("fs", RATES)
def test_synthetic_events_recovered_at_any_rate(fs: float, running: bool) -> None:
    acc, gyr, ic_true, tc_true = synthetic_recording(fs, running=running)
    ev = detect_gait_events(acc, gyr, fs)
    # every true IC that closes a stride after a detected swing: the first IC precedes any swing
    di, ri = match_events(ev.all_ic / fs, ic_true, 0.05)
    assert len(ri) == len(ic_true) - 1 and 0 not in ri
    ic_err = np.abs(ev.all_ic[di] / fs - ic_true[ri])
    # linear interpolation of the zero crossing; the slope changes at IC (swing -> foot slap), so allow
    # a third of a sample (the simulator target is one sample period)
    assert ic_err.max() < 0.34 / fs
    di, ri = match_events(ev.all_tc / fs, tc_true, 0.05)
    assert len(ri) == len(tc_true)
    tc_err = np.abs(ev.all_tc[di] / fs - tc_true[ri])
    assert tc_err.max() < 0.25 / fs  # parabolic peak interpolation
    assert ev.quality_ok.all()
    assert len(ev) == len(ic_true) - 2


def test_noisy_running_200hz_within_one_sample() -> None:
    """Simulator target: IC and TC within one sample period for >= 99 % of strides at 200 Hz."""
    fs = 200.0
    rng = np.random.default_rng(7)
    ic_err, tc_err, n_true = [], [], 0
    for seed in range(10):
        acc, gyr, ic_true, tc_true = synthetic_recording(fs, running=True, n_strides=20, seed=seed)
        gyr = gyr + rng.normal(0.0, 3.0, gyr.shape)  # MEMS gyro noise, deg/s
        acc = acc + rng.normal(0.0, 0.3, acc.shape)
        ev = detect_gait_events(acc, gyr, fs)
        di, ri = match_events(ev.all_ic / fs, ic_true[1:], 0.05)
        ic_err.extend(np.abs(ev.all_ic[di] / fs - ic_true[1:][ri]))
        di, ri = match_events(ev.all_tc / fs, tc_true, 0.05)
        tc_err.extend(np.abs(ev.all_tc[di] / fs - tc_true[ri]))
        n_true += len(tc_true)
    assert len(tc_err) == n_true and len(ic_err) == n_true
    assert np.mean(np.array(ic_err) <= 1.0 / fs) >= 0.99
    assert np.mean(np.array(tc_err) <= 1.0 / fs) >= 0.99


def test_same_physical_result_at_every_rate() -> None:
    results = []
    for fs in RATES:
        acc, gyr, _, _ = synthetic_recording(fs, running=True, seed=3)
        ev = detect_gait_events(acc, gyr, fs)
        results.append(compute_stride_features(ev, acc, gyr))
    ref = results[0]
    for df in results[1:]:
        assert len(df) == len(ref)
        np.testing.assert_allclose(df["stride_time_s"], ref["stride_time_s"], atol=3e-3)
        np.testing.assert_allclose(df["ground_contact_time_ms"], ref["ground_contact_time_ms"], atol=3.0)
        np.testing.assert_allclose(df["cadence_spm"], ref["cadence_spm"], atol=0.3)


def test_synthetic_running_features_match_truth() -> None:
    fs = 200.0
    acc, gyr, ic, tc = synthetic_recording(fs, running=True, seed=1)
    ev = detect_gait_events(acc, gyr, fs)
    df = compute_stride_features(ev, acc, gyr)
    # strides start at the 2nd true IC (the first IC precedes the first detected swing)
    true_stride = np.diff(ic)[1:]
    true_contact_ms = 1000 * (tc - ic[:-1])[1:]
    np.testing.assert_allclose(df["stride_time_s"], true_stride, atol=1.0 / fs)
    np.testing.assert_allclose(df["ground_contact_time_ms"], true_contact_ms, atol=1000.0 / fs)
    np.testing.assert_allclose(df["cadence_spm"], 120.0 / true_stride, rtol=0.01)
    # impact: 60 m/s^2 bump on top of gravity
    # (a sample can miss the bump's top by up to half a period: 60 exp(-0.5 (2.5/10)^2) = 58.1)
    assert (df["peak_impact_m_s2"] > G + 58.0).all() and (df["peak_impact_m_s2"] <= G + 60.0 + 1e-9).all()
    # the synthetic slap lobe 150 sin(pi u) over 60 ms integrates to 2 * 150 * 0.06 / pi = 5.73 deg
    np.testing.assert_allclose(df["foot_strike_angle_deg"], 2 * 150 * 0.06 / np.pi, atol=0.1)
    assert df["quality_ok"].all()


def test_rejects_bad_shapes_and_handles_no_gait() -> None:
    with pytest.raises(ValueError):
        detect_gait_events(np.zeros((10, 3)), np.zeros((10, 2)), 100.0)
    with pytest.raises(ValueError):
        detect_gait_events(np.zeros((10, 3)), np.zeros((10, 3)), 0.0)
    rng = np.random.default_rng(0)
    still = rng.normal(0, 2.0, (2000, 3))  # standing: gyro noise only
    ev = detect_gait_events(np.tile([0, 0, G], (2000, 1)), still, 200.0)
    assert len(ev) == 0 and len(ev.all_ic) == 0


def test_data_gap_is_flagged() -> None:
    fs = 200.0
    acc, gyr, ic, _ = synthetic_recording(fs, running=True, seed=2)
    gap = int((ic[4] + 0.3) * fs)
    gyr[gap : gap + 3] = np.nan
    ev = detect_gait_events(acc, gyr, fs)
    df = compute_stride_features(ev, acc, gyr)
    bad = df[~df["quality_ok"]]
    assert len(bad) == 1
    assert "data_gap" in bad["quality_reason"].iloc[0]
    assert bad["ic_s"].iloc[0] < gap / fs < bad["ic_next_s"].iloc[0]


# --------------------------------------------------------------------------------------------------------
# feature formulas on hand-computed numbers
# --------------------------------------------------------------------------------------------------------
def _events(ic, tc, ms, nxt, fs) -> GaitEvents:
    a = [np.array(x, dtype=float) for x in (ic, tc, ms, nxt)]
    n = len(a[0])
    return GaitEvents(
        ic=a[0],
        tc=a[1],
        min_vel=a[2],
        swing_peak=(a[1] + a[3]) / 2,
        ic_next=a[3],
        quality_ok=np.ones(n, bool),
        quality_reason=np.array([""] * n, dtype=object),
        sample_rate_hz=fs,
    )


def test_feature_formulas_hand_computed() -> None:
    fs = 100.0
    n = 300
    acc = np.tile([0.0, 0.0, G], (n, 1))
    acc[105] = [30.0, 0.0, 40.0]  # |acc| = 50 inside the impact window (IC + 50 ms)
    acc[125] = [0.0, 0.0, 90.0]  # after IC + 100 ms: outside the impact window
    gyr = np.zeros((n, 3))
    gyr[100:111, 1] = 200.0  # plantarflexing 200 deg/s from IC to sample 110, 0 from sample 111
    ev = _events([100], [130], [115], [200], fs)
    df = compute_stride_features(ev, acc, gyr)
    row = df.iloc[0]
    assert row["stride_time_s"] == pytest.approx(1.0)
    assert row["cadence_spm"] == pytest.approx(120.0)
    assert row["ground_contact_time_ms"] == pytest.approx(300.0)
    assert row["swing_time_ms"] == pytest.approx(700.0)
    assert row["duty_factor"] == pytest.approx(0.3)
    assert row["peak_impact_m_s2"] == pytest.approx(50.0)
    # trapezoid: 10 intervals at 200 deg/s * 0.01 s + half interval ramp to 0 = 20 + 1 deg
    assert row["foot_strike_angle_deg"] == pytest.approx(21.0)
    assert bool(row["quality_ok"]) and row["quality_reason"] == ""
    assert set(FEATURE_COLUMNS) <= set(df.columns)


def test_quality_flags_implausible_strides() -> None:
    fs = 100.0
    acc = np.tile([0.0, 0.0, G], (600, 1))
    gyr = np.zeros((600, 3))
    # stride 1: 0.3 s stride (too short); stride 2: contact 50 ms; stride 3: stride 2.5 s
    ev = _events([10, 100, 200], [20, 105, 250], [15, 102, 230], [40, 190, 450], fs)
    df = compute_stride_features(ev, acc, gyr)
    assert not df["quality_ok"].any()
    assert "stride_time" in df["quality_reason"][0]
    assert "contact_time" in df["quality_reason"][1]
    assert "stride_time" in df["quality_reason"][2]


def test_flight_time_running_walking_and_missing() -> None:
    # running: right foot lands 130 ms after left toe-off
    np.testing.assert_allclose(flight_time_ms([0.0, 0.7], [0.22, 0.92], [0.35, 1.05]), [130.0, 130.0])
    # walking: contralateral IC before toe-off -> double support -> 0
    np.testing.assert_allclose(flight_time_ms([0.0, 1.1], [0.7, 1.8], [0.55, 1.65]), [0.0, 0.0])
    # no contralateral IC inside the stride
    out = flight_time_ms([0.0, 0.7], [0.22, 0.92], [0.35], ic_next_s=[0.7, 1.4])
    assert out[0] == pytest.approx(130.0) and np.isnan(out[1])


def test_add_flight_time_on_synthetic_running_pair() -> None:
    fs = 200.0
    acc, gyr, ic, tc = synthetic_recording(fs, running=True, n_strides=8, seed=4)
    # right foot: same pattern shifted by half a stride (0.36 s); flight = 360 - contact(~240) ms
    shift = int(round(0.36 * fs))
    acc_r, gyr_r = np.roll(acc, shift, axis=0), np.roll(gyr, shift, axis=0)
    left = compute_stride_features(detect_gait_events(acc, gyr, fs), acc, gyr)
    right = compute_stride_features(detect_gait_events(acc_r, gyr_r, fs), acc_r, gyr_r)
    lo, _ = add_flight_time(left, right)
    f = lo["flight_time_ms"].dropna()
    assert len(f) >= 5
    expected = 1000 * (lo["ic_s"] + 0.36 - lo["tc_s"]).loc[f.index]
    np.testing.assert_allclose(f, expected, atol=10.0)
    assert (f > 50).all()


# --------------------------------------------------------------------------------------------------------
# real data: gaitmap's walking recording (204.8 Hz) with motion-capture reference events
# --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gaitmap_fixture():
    if not (GAITMAP / "imu_sample.csv").exists():
        pytest.skip(f"{FIXTURES}/gaitmap not found: real-data gait test needs the gaitmap recording")
    return load_gaitmap_fixture(GAITMAP)


@pytest.mark.fixtures
def test_real_recording_meets_accuracy_targets(gaitmap_fixture) -> None:
    res = evaluate_fixture(gaitmap_fixture, detect_gait_events, tolerance_ms=100.0)
    for foot in ("left", "right", "both"):
        r = res[foot]
        print(foot, {k: round(v, 2) for k, v in r.items()})
        assert r["n_reference"] > 25 or foot == "both"
        assert r["detection_rate"] >= 0.98
        assert r["tc_detection_rate"] >= 0.98
        assert r["ic_median_abs_error_ms"] <= 10.0
        assert r["tc_median_abs_error_ms"] <= 10.0
        assert r["ic_p95_abs_error_ms"] <= 20.0
        assert r["tc_p95_abs_error_ms"] <= 20.0
    # the only extra detection is the unannotated pivot step of the left foot during the turn
    assert res["both"]["false_detections_ic"] <= 1


@pytest.mark.fixtures
@pytest.mark.parametrize("fs_new,up,down", [(100.0, 125, 256), (400.0, 125, 64)])
def test_real_recording_resampled_same_accuracy(gaitmap_fixture, fs_new: float, up: int, down: int) -> None:
    fx = gaitmap_fixture
    for foot in ("left", "right"):
        acc = resample_poly(fx.acc_m_s2[foot], up, down, axis=0)
        gyr = resample_poly(fx.gyr_deg_s[foot], up, down, axis=0)
        ref = fx.stride_events[fx.stride_events["foot"] == foot].copy()
        ref[["ic", "tc"]] = ref[["ic", "tc"]] * fs_new / fx.sample_rate_hz
        r = evaluate_against_reference(detect_gait_events(acc, gyr, fs_new), ref, fs_new, 100.0)
        assert r["detection_rate"] >= 0.98
        assert r["ic_median_abs_error_ms"] <= 10.0
        assert r["tc_median_abs_error_ms"] <= 10.0


@pytest.mark.fixtures
def test_real_recording_features_are_physiological(gaitmap_fixture) -> None:
    fx = gaitmap_fixture
    tables = {}
    for foot in ("left", "right"):
        ev = detect_gait_events(fx.acc_m_s2[foot], fx.gyr_deg_s[foot], fx.sample_rate_hz)
        tables[foot] = compute_stride_features(ev, fx.acc_m_s2[foot], fx.gyr_deg_s[foot])
    left, right = add_flight_time(tables["left"], tables["right"])
    for df in (left, right):
        ok = df[df["quality_ok"]]
        assert len(ok) >= 25
        assert 90 <= ok["cadence_spm"].median() <= 130  # walking
        assert 0.55 <= ok["duty_factor"].median() <= 0.75  # walking: contact > 50 % of the stride
        assert (ok["flight_time_ms"].dropna() == 0).all()  # walking has no flight phase
        assert ok["foot_strike_angle_deg"].median() > 10  # walkers heel-strike
        assert (ok["peak_impact_m_s2"] > G).all()
    # reference stride times from consecutive reference ICs agree with ours
    ref = fx.stride_events[fx.stride_events["foot"] == "right"]["ic"].to_numpy()
    ref_stride = np.diff(ref) / fx.sample_rate_hz
    ours = right["stride_time_s"].to_numpy()
    assert abs(np.median(ours) - np.median(ref_stride)) < 0.01
