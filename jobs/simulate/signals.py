"""Pure numpy synthesis of running signals consistent with a runner's traits and true gait events.

No Kafka, no I/O. Times are seconds since the session start (true clock). Everything is vectorised per
chunk of samples; a session is synthesised chunk by chunk so memory stays bounded.

Foot IMU (gaitmap foot sensor frame, both feet: x to the toes, y to the left, z up; acc in m/s^2 with
gravity, gyr in deg/s). The sagittal rate ``gyr_y`` (+ = plantarflexion, toes down) of one foot follows,
per gait cycle, the contract of :mod:`pipelines.science.gait`:

* initial contact ``IC``: ``gyr_y`` crosses zero upwards; a loading lobe
  ``A sin(pi u / a)`` (``u`` = time since IC, ``a`` ~ 50 ms) rotates the foot from its strike angle
  ``2 A a / pi`` (deg, + = heel strike) to foot flat, while an impact ``I exp(-u/12 ms) sin(2 pi 30 Hz u)``
  hits ``acc_z`` (and braking hits ``acc_x``);
* mid-stance: foot flat, ``gyr ~ 0``, gravity on ``acc_z``;
* push-off over ``L`` s before toe-off: ``gyr_y = P (1 - cos(pi x / L)) / 2`` peaks at ``P`` exactly at
  ``TC`` (500-1200 deg/s);
* swing: ``gyr_y = P - (P + S)(1 - cos(pi v / d1)) / 2`` falls to the swing minimum ``-S`` at ``d1``
  (curvature matched to the push-off so the TC peak is locally symmetric), then
  ``-S cos(pi w / (2 d2))`` rises and crosses zero exactly at the next ``IC``. ``S`` is solved so the net
  sagittal rotation over a stride is zero; the foot angle ``theta`` (closed-form integral of ``gyr_y``)
  rotates gravity and the swing's linear acceleration into the sensor frame.

Pelvis IMU (100 Hz, x forward, y left, z up): vertical oscillation ``-VO/2 cos(2 pi (psi - psi_ms))``
per step (lowest at mid-stance) gives ``acc_z``; the frontal-plane angle
``phi = +D sin(pi u / Tc)`` during left stance (right side drops, positive roll about x) and
``-D sin(pi u / Tc)`` during right stance gives ``gyr_x = dphi/dt`` and ``acc_y = g sin(phi)``.

EMG (100 Hz linear envelopes, uV): one burst per muscle per stride of its side, timed to that side's
events: hamstrings ``IC-150 ms .. IC+40 ms``, gluteus maximus from ``hamstring onset + lag`` to
``IC + 0.45 Tc``, gluteus medius ``IC-60 ms .. IC+0.6 Tc``, vastus lateralis ``IC-80 ms .. IC+0.5 Tc``,
gastrocnemius ``IC+0.3 Tc .. TC``. Burst shape: half-cosine rise over 30 % of the burst, plateau to
50 %, half-cosine fall; its integral is 0.6 x amplitude x duration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jobs.simulate.plan import PlannedSession
from jobs.simulate.traits import RunnerTraits

__all__ = [
    "EMG_BURSTS",
    "FootEvents",
    "SessionGait",
    "emg_envelopes",
    "foot_imu",
    "pelvis_imu",
    "session_gait",
    "watch_series",
]

G = 9.81
RUN_LEAD_S = 3.0  # standing still after switch-on before the first push-off
RUN_TAIL_S = 3.0  # standing still after the last contact
SWING_FALL_STRETCH = 1.1  # d1 relative to the curvature-matched value
BURST_INTEGRAL = 0.6  # integral of the unit burst shape over x in [0, 1]
MUSCLES = ("gluteus_maximus", "gluteus_medius", "hamstrings", "gastrocnemius", "vastus_lateralis")
#: nominal burst windows (documentation; see :func:`_burst_windows`)
EMG_BURSTS = {
    "hamstrings": "IC-150 ms .. IC+40 ms",
    "gluteus_maximus": "hamstring onset + lag .. IC+0.45 Tc",
    "gluteus_medius": "IC-60 ms .. IC+0.6 Tc",
    "vastus_lateralis": "IC-80 ms .. IC+0.5 Tc",
    "gastrocnemius": "IC+0.3 Tc .. TC",
}


@dataclass
class FootEvents:
    """True events and waveform parameters of one foot (seconds since session start, true clock).

    Cycle ``k``: push-off ends at ``tc[k]``, swing ``tc[k] .. ic[k]``, stance ``ic[k] .. tc[k+1]``.
    Arrays indexed by ``k`` describe the swing ending at ``ic[k]`` (``P, L, S, d1, d2``) and the stance
    starting at ``ic[k]`` (``A, a, impact, stance_s``, EMG amplitudes ``amp[muscle]``, onsets).
    """

    side: str
    tc: np.ndarray
    ic: np.ndarray
    P: np.ndarray
    L: np.ndarray
    S: np.ndarray
    d1: np.ndarray
    d2: np.ndarray
    A: np.ndarray
    a: np.ndarray
    impact: np.ndarray
    stance_s: np.ndarray  # ic[k] -> tc[k+1] (last: NaN)
    strike_deg: np.ndarray
    pelvic_drop_deg: np.ndarray
    fatigue: np.ndarray
    amp: dict[str, np.ndarray]
    ham_onset_s: np.ndarray  # relative to ic
    glute_onset_s: np.ndarray  # relative to ic


@dataclass
class SessionGait:
    """Everything needed to synthesise a session's signals, plus the 1 Hz series for the watch."""

    traits: RunnerTraits
    duration_s: int
    speed_m_s: np.ndarray  # 1 Hz
    cadence_spm: np.ndarray  # 1 Hz, 0 while standing
    fatigue: np.ndarray  # 1 Hz, 0..1
    left: FootEvents
    right: FootEvents
    vo_cm: float
    gyro_bias: dict[str, np.ndarray]

    def foot(self, side: str) -> FootEvents:
        return self.left if side == "left" else self.right


def _fatigue_curve(traits: RunnerTraits, duration_s: int) -> np.ndarray:
    """0..1 fatigue at 1 Hz: rises over the second half, scaled by run length (full at >= 90 min)."""
    t = np.arange(duration_s, dtype=float)
    ramp = np.clip((t - 0.5 * duration_s) / (0.5 * duration_s), 0, 1)
    return traits.fatigue_sensitivity * ramp * np.clip(duration_s / 5400.0, 0.15, 1.0)


def _solve_swing(P: np.ndarray, L: np.ndarray, Ts: np.ndarray, strike: np.ndarray):
    """Swing depth ``S`` and sub-durations ``d1, d2`` with zero net rotation and matched TC curvature."""
    S = P.copy()
    for _ in range(4):
        d1 = np.minimum(SWING_FALL_STRETCH * L * np.sqrt((P + S) / P), 0.7 * Ts)
        d2 = Ts - d1
        S = (P * L / 2 + P * d1 / 2 + strike) / (d1 / 2 + 2 * d2 / np.pi)
    d1 = np.minimum(SWING_FALL_STRETCH * L * np.sqrt((P + S) / P), 0.7 * Ts)
    d2 = Ts - d1
    S = (P * L / 2 + P * d1 / 2 + strike) / (d1 / 2 + 2 * d2 / np.pi)
    return S, d1, d2


def _foot_events(
    traits: RunnerTraits,
    side: str,
    ic: np.ndarray,
    speed_at,
    fatigue_at,
    gct_scale: float,
    rng: np.random.Generator,
) -> FootEvents:
    n = len(ic)
    spd = speed_at(ic)
    fat = fatigue_at(ic)
    # ground contact time (s): shorter when faster, longer when fatigued
    stance = 0.245 * (3.0 / spd) ** 0.8 * (1 + 0.05 * fat) * gct_scale * (1 + rng.normal(0, 0.02, n))
    stance = np.clip(stance, 0.16, 0.36)
    # push-off before TC k belongs to the stance starting at ic[k-1]
    prev_stance = np.concatenate([[0.25], stance[:-1]])
    L = 0.55 * prev_stance
    P = np.clip(900 * (spd / 3.0) ** 0.8 * (1 + rng.normal(0, 0.04, n)), 450, 1300)
    first_tc = ic[0] - 0.45 if n else 0.0
    tc = np.concatenate([[first_tc], ic[:-1] + stance[:-1]])
    Ts = ic - tc
    strike = np.clip(traits.foot_strike_angle_deg * (1 + 0.15 * fat) * (1 + rng.normal(0, 0.06, n)), 1.5, 30)
    a = np.minimum(0.05, 0.22 * stance)
    A = strike * np.pi / (2 * a)
    S, d1, d2 = _solve_swing(P, L, Ts, strike)
    impact = (30 + 3.0 * strike) * (spd / 3.0) ** 1.5 * (1 + rng.normal(0, 0.08, n))
    ua = traits.glute_underactivation(side)
    ua_mean = 0.5 * (traits.glute_underactivation_left + traits.glute_underactivation_right)
    drop = traits.pelvic_drop_deg * (1 + 0.8 * (ua - ua_mean)) + 2.5 * fat
    drop = np.clip(drop * (1 + rng.normal(0, 0.05, n)), 0.5, 20)
    intensity = np.clip(spd / 3.0, 0.6, 1.8)
    var = lambda: 1 + rng.normal(0, 0.08, n)  # noqa: E731 - stride-to-stride amplitude variability
    amp = {
        "gluteus_maximus": 90 * (1 - ua) * (1 - 0.25 * fat) * intensity * var(),
        "gluteus_medius": 70 * (1 - 0.8 * ua) * (1 - 0.2 * fat) * intensity * var(),
        "hamstrings": 80 * (1 + traits.hamstring_dominance) * (1 + 0.2 * fat) * intensity * var(),
        "gastrocnemius": 110 * (1 + traits.calf_dominance) * (1 + 0.2 * fat) * intensity * var(),
        "vastus_lateralis": 100 * (1 + 0.2 * traits.knee_valgus) * intensity * var(),
    }
    amp = {m: np.clip(v, 5, 2000) for m, v in amp.items()}
    ham_on = -0.150 + rng.normal(0, 0.004, n)
    glute_on = ham_on + traits.glute_onset_lag_ms / 1000 * (1 + 0.3 * fat) + rng.normal(0, 0.004, n)
    stance_out = np.append(stance[:-1], np.nan) if n else stance
    return FootEvents(
        side, tc, ic, P, L, S, d1, d2, A, a, impact, stance_out, strike, drop, fat, amp, ham_on, glute_on
    )


def session_gait(traits: RunnerTraits, session: PlannedSession, rng: np.random.Generator) -> SessionGait:
    """True gait events of a session: left/right IC and TC times and per-stride waveform parameters.

    Stride frequency follows cadence = trait cadence x (speed / easy speed)^0.35 x (1 - 4 % fatigue);
    the left foot's ICs are where the cumulative stride phase crosses integers, the right's at half
    strides, each with ~3 ms jitter.
    """
    from jobs.simulate.plan import session_speed_m_s

    n = session.duration_s
    speed = session_speed_m_s(session, rng)
    fatigue = _fatigue_curve(traits, n)
    cadence = traits.cadence_spm * (speed / traits.easy_speed_m_s) ** 0.35 * (1 - 0.04 * fatigue)
    t1 = np.arange(n, dtype=float)
    speed_at = lambda x: np.interp(x, t1, speed)  # noqa: E731
    fatigue_at = lambda x: np.interp(x, t1, fatigue)  # noqa: E731
    # stride phase on a 10 ms grid
    grid = np.arange(0, n, 0.01)
    f = np.interp(grid, t1, cadence) / 120.0
    phase = np.concatenate([[0.0], np.cumsum(f[:-1] * 0.01)])
    run0, run1 = RUN_LEAD_S + 0.45 + float(rng.uniform(0, 0.5)), n - RUN_TAIL_S
    ph0 = np.interp(run0, grid, phase)
    ph1 = np.interp(run1, grid, phase)
    k = np.arange(0, max(0, int(np.floor(ph1 - ph0 - 0.5))))
    ic_l = np.interp(ph0 + k, phase, grid) + rng.normal(0, 0.003, len(k))
    ic_r = np.interp(ph0 + k + 0.5, phase, grid) + rng.normal(0, 0.003, len(k))
    bal = traits.gct_balance_left_pct / 50.0
    left = _foot_events(traits, "left", ic_l, speed_at, fatigue_at, bal, rng)
    right = _foot_events(traits, "right", ic_r, speed_at, fatigue_at, 2 - bal, rng)
    running = (t1 >= run0 - 0.5) & (t1 < run1)
    return SessionGait(
        traits=traits,
        duration_s=n,
        speed_m_s=np.where(running, speed, 0.0),
        cadence_spm=np.where(running, cadence, 0.0),
        fatigue=fatigue,
        left=left,
        right=right,
        vo_cm=traits.vertical_oscillation_cm,
        gyro_bias={s: rng.normal(0, 0.3, 3) for s in ("left", "right", "pelvis")},
    )


def _idx(arr: np.ndarray, j: np.ndarray, fill: float) -> np.ndarray:
    """``arr[j]`` with ``fill`` where ``j`` is out of range."""
    ok = (j >= 0) & (j < len(arr))
    out = np.full(j.shape, fill, dtype=float)
    out[ok] = arr[j[ok]]
    return out


def foot_imu(
    gait: SessionGait, side: str, t_s: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Foot IMU channels (gaitmap foot sensor frame) at true times ``t_s`` (s since session start).

    Returns
    -------
    dict
        ``acc_x, acc_y, acc_z`` (m/s^2, gravity included) and ``gyr_x, gyr_y, gyr_z`` (deg/s), float32.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        return _foot_imu(gait, side, t_s, rng)


def _padded(arr: np.ndarray, fill: float) -> np.ndarray:
    """``[fill, *arr, fill]`` as float: ``_padded(arr, f)[j + 1] == _idx(arr, j, f)`` for -1 <= j <= len."""
    out = np.empty(len(arr) + 2, dtype=float)
    out[0] = out[-1] = fill
    out[1:-1] = arr
    return out


def _scatter(n: int, where: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.where(mask, full_values, 0.0)`` built from the masked positions' values only."""
    out = np.zeros(n)
    out[where] = values
    return out


def _foot_imu(
    gait: SessionGait, side: str, t_s: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    # Same arithmetic as the straightforward full-array form ``x += np.where(mask, expr, 0.0)``, but each
    # ``expr`` is evaluated only at the mask's positions (elementwise ops give the same bits on a subset)
    # and scattered into a zero array, so the float32 output is bit-identical and ~3x cheaper.
    fe = gait.foot(side)
    t = np.asarray(t_s, dtype=float)
    n = len(t)
    sgn = 1.0 if side == "left" else -1.0
    gyr_y = np.zeros_like(t)
    theta = np.zeros_like(t)
    gyr_x = np.zeros_like(t)
    gyr_z = np.zeros_like(t)
    a_f = np.zeros_like(t)
    a_v = np.zeros_like(t)
    if len(fe.ic):
        j = np.searchsorted(fe.ic, t, side="right") - 1  # last IC <= t (-1: before the first)
        j1 = j + 1  # index into padded per-stride arrays for stride j; also the next TC / swing / IC (nx)
        n2 = j1 + 1  # padded index of nx
        tc_n = _padded(fe.tc, np.inf)[n2]
        ic_j = _padded(fe.ic, -np.inf)[j1]
        # stance after ic[j]: loading lobe
        a = _padded(fe.a, 1.0)[j1]
        u = t - ic_j
        lobe = np.flatnonzero((j >= 0) & (u < a) & (t < tc_n))
        A_, a_, u_ = _padded(fe.A, 0.0)[j1[lobe]], a[lobe], u[lobe]
        ph = np.pi * u_ / a_
        sin_ph = np.sin(ph)
        gyr_y += _scatter(n, lobe, A_ * sin_ph)
        theta += _scatter(n, lobe, -2 * A_ * a_ / np.pi + A_ * a_ / np.pi * (1 - np.cos(ph)))
        gyr_x += _scatter(n, lobe, sgn * (80 + 250 * gait.traits.knee_valgus) * sin_ph)
        # push-off before tc[nx]
        P_pad = _padded(fe.P, 0.0)
        L = _padded(fe.L, 1.0)[n2]
        x = t - (tc_n - L)
        push = np.flatnonzero((x >= 0) & (t < tc_n))
        P_, L_, x_ = P_pad[n2[push]], L[push], x[push]
        ph = np.pi * x_ / L_
        gyr_y += _scatter(n, push, P_ * (1 - np.cos(ph)) / 2)
        theta += _scatter(n, push, P_ / 2 * (x_ - L_ / np.pi * np.sin(ph)))
        # swing tc[nx] -> ic[nx]
        S_pad = _padded(fe.S, 0.0)
        d1, d2 = _padded(fe.d1, 1.0)[n2], _padded(fe.d2, 1.0)[n2]
        v = t - tc_n
        fall_m = (v >= 0) & (v < d1)
        rise_m = (v >= d1) & (v < d1 + d2)
        fall = np.flatnonzero(fall_m)
        rise = np.flatnonzero(rise_m)
        nf = n2[fall]
        P_, S_, L_, v_, d1_ = P_pad[nf], S_pad[nf], L[fall], v[fall], d1[fall]
        ph = np.pi * v_ / d1_
        gyr_y += _scatter(n, fall, P_ - (P_ + S_) * (1 - np.cos(ph)) / 2)
        theta += _scatter(n, fall, P_ * L_ / 2 + P_ * v_ - (P_ + S_) / 2 * (v_ - d1_ / np.pi * np.sin(ph)))
        nr = n2[rise]
        P_, S_, L_, d1_, d2_ = P_pad[nr], S_pad[nr], L[rise], d1[rise], d2[rise]
        w_ = v[rise] - d1_
        ph2 = np.pi * w_ / (2 * d2_)
        th_d1 = P_ * L_ / 2 + P_ * d1_ - (P_ + S_) * d1_ / 2
        gyr_y += _scatter(n, rise, -S_ * np.cos(ph2))
        theta += _scatter(n, rise, th_d1 - S_ * 2 * d2_ / np.pi * np.sin(ph2))
        # swing linear acceleration (world forward / up) and frontal/transverse rotation
        sw = np.flatnonzero(fall_m | rise_m)
        v_ = v[sw]
        Ts_ = d1[sw] + d2[sw]
        phs = 2 * np.pi * v_ / Ts_
        sin_phs = np.sin(phs)
        spd = np.interp(t[sw], np.arange(gait.duration_s), gait.speed_m_s)
        a_f += _scatter(n, sw, 2 * spd * np.pi / Ts_ * sin_phs)
        a_v += _scatter(n, sw, 25.0 * sin_phs)
        gyr_x += _scatter(n, sw, sgn * 60 * sin_phs)
        gyr_z += _scatter(n, sw, sgn * 90 * np.sin(phs + 0.5))
    th = np.deg2rad(theta)
    c, s = np.cos(th), np.sin(th)
    acc_x = a_f * c - (G + a_v) * s
    acc_z = a_f * s + (G + a_v) * c
    acc_y = np.zeros_like(t)
    if len(fe.ic):
        imp = np.flatnonzero((j >= 0) & (u >= 0) & (u < 0.1))
        I_j = _padded(fe.impact, 0.0)[j1[imp]]
        uu = u[imp]
        acc_z += _scatter(n, imp, I_j * np.exp(-uu / 0.012) * np.sin(2 * np.pi * 30 * uu))
        e10 = np.exp(-uu / 0.010)
        acc_x -= _scatter(n, imp, 0.6 * I_j * e10 * np.sin(2 * np.pi * 35 * uu))
        acc_y += _scatter(n, imp, sgn * 0.2 * I_j * e10 * np.sin(2 * np.pi * 40 * uu))
    bias = gait.gyro_bias[side]
    noise_acc = rng.normal(0, 0.08, (3, n))
    noise_gyr = rng.normal(0, 1.0, (3, n))
    out = {
        "acc_x": acc_x + noise_acc[0],
        "acc_y": acc_y + noise_acc[1],
        "acc_z": acc_z + noise_acc[2],
        "gyr_x": gyr_x + bias[0] + noise_gyr[0],
        "gyr_y": gyr_y + bias[1] + noise_gyr[1],
        "gyr_z": gyr_z + bias[2] + noise_gyr[2],
    }
    return {k: v.astype(np.float32) for k, v in out.items()}


def _stance_phase(fe: FootEvents, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stride index j, time since ic[j], in-stance mask) for times ``t``."""
    j = np.searchsorted(fe.ic, t, side="right") - 1
    u = t - _idx(fe.ic, j, -np.inf)
    tc = _idx(fe.stance_s, j, 0.3)
    inside = (j >= 0) & (u < tc)
    return j, u, inside


def pelvis_imu(gait: SessionGait, t_s: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Pelvis (sacrum) IMU channels at true times ``t_s``: x forward, y left, z up (m/s^2, deg/s)."""
    t = np.asarray(t_s, dtype=float)
    phi = np.zeros_like(t)
    dphi = np.zeros_like(t)
    a_fwd = np.zeros_like(t)
    for fe, sgn in ((gait.left, 1.0), (gait.right, -1.0)):
        if not len(fe.ic):
            continue
        j, u, inside = _stance_phase(fe, t)
        tc = _idx(fe.stance_s, j, 0.3)
        D = _idx(fe.pelvic_drop_deg, j, 0.0)
        ph = np.where(inside, np.pi * u / tc, 0.0)
        phi += np.where(inside, sgn * D * np.sin(ph), 0.0)
        dphi += np.where(inside, sgn * D * np.pi / tc * np.cos(ph), 0.0)
        a_fwd += np.where(inside, -3.0 * np.sin(2 * ph), 0.0)
    # vertical oscillation per step: lowest at mid-stance of either foot
    steps = np.sort(np.concatenate([gait.left.ic, gait.right.ic]))
    a_up = np.zeros_like(t)
    yaw_rate = np.zeros_like(t)
    if len(steps) > 1:
        k = np.searchsorted(steps, t, side="right") - 1
        ok = (k >= 0) & (k < len(steps) - 1)
        s0 = _idx(steps, k, 0.0)
        T = np.where(ok, _idx(steps, k + 1, 1.0) - s0, 1.0)
        psi = np.where(ok, (t - s0) / T, 0.0)
        ms = 0.5 * 0.245 / np.maximum(T, 0.2)
        amp = gait.vo_cm / 100 / 2 * (2 * np.pi / T) ** 2
        a_up = np.where(ok, amp * np.cos(2 * np.pi * (psi - ms)), 0.0)
        yaw_rate = np.where(ok, 40.0 * np.sin(np.pi * psi) * np.where(k % 2 == 0, 1, -1), 0.0)
    r = np.deg2rad(phi)
    n = len(t)
    bias = gait.gyro_bias["pelvis"]
    na = rng.normal(0, 0.05, (3, n))
    ng = rng.normal(0, 0.5, (3, n))
    out = {
        "acc_x": a_fwd + na[0],
        "acc_y": G * np.sin(r) + na[1],
        "acc_z": (G + a_up) * np.cos(r) + na[2],
        "gyr_x": dphi + bias[0] + ng[0],
        "gyr_y": 0.3 * dphi + bias[1] + ng[1],
        "gyr_z": yaw_rate + bias[2] + ng[2],
    }
    return {k: v.astype(np.float32) for k, v in out.items()}


def _burst_windows(fe: FootEvents, muscle: str) -> tuple[np.ndarray, np.ndarray]:
    """(onset, offset) relative to ic[k] in seconds, per stride."""
    tc = np.where(np.isfinite(fe.stance_s), fe.stance_s, 0.25)
    if muscle == "hamstrings":
        return fe.ham_onset_s, np.full_like(tc, 0.040)
    if muscle == "gluteus_maximus":
        return fe.glute_onset_s, 0.45 * tc
    if muscle == "gluteus_medius":
        return np.full_like(tc, -0.060), 0.6 * tc
    if muscle == "vastus_lateralis":
        return np.full_like(tc, -0.080), 0.5 * tc
    return 0.3 * tc, tc  # gastrocnemius


def _burst(x: np.ndarray) -> np.ndarray:
    """Unit burst shape on x in [0, 1] (0 outside): cosine rise to 0.3, plateau to 0.5, cosine fall."""
    y = np.where(x < 0.3, 0.5 * (1 - np.cos(np.pi * x / 0.3)), 1.0)
    y = np.where(x > 0.5, 0.5 * (1 + np.cos(np.pi * (x - 0.5) / 0.5)), y)
    return np.where((x >= 0) & (x <= 1), y, 0.0)


def emg_envelopes(gait: SessionGait, t_s: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """EMG linear envelopes (uV) for 5 muscles x 2 sides at true times ``t_s``; keys ``<muscle>_<side>``."""
    t = np.asarray(t_s, dtype=float)
    n = len(t)
    out: dict[str, np.ndarray] = {}
    for side in ("left", "right"):
        fe = gait.foot(side)
        j = np.searchsorted(fe.ic, t, side="right") - 1 if len(fe.ic) else np.full(n, -1)
        # per IC neighbour (previous, next): padded index, in-range mask, t - ic
        neighbours = []
        for jj in (j, j + 1):  # bursts from the previous IC (stance) and the next IC (late swing)
            ok = (jj >= 0) & (jj < len(fe.ic))
            if ok.any():
                p = jj + 1  # _padded(arr, f)[jj + 1] == _idx(arr, jj, f) for -1 <= jj <= len
                neighbours.append((p, ok, t - _padded(fe.ic, 0.0)[p]))
        for muscle in MUSCLES:
            on, off = _burst_windows(fe, muscle)
            amp = fe.amp[muscle]
            env = np.zeros(n)
            for p, ok, t_ic in neighbours:
                o0, o1 = _padded(on, 0.0)[p], _padded(off, 1.0)[p]
                x = (t_ic - o0) / np.maximum(o1 - o0, 1e-3)
                if np.isfinite(amp).all() and (amp >= 0).all():
                    # amp * _burst(x) is +0.0 outside the burst (0 <= x <= 1): evaluate it only inside
                    inside = np.flatnonzero(ok & (x >= 0) & (x <= 1))
                    env += _scatter(n, inside, _padded(amp, 0.0)[p[inside]] * _burst(x[inside]))
                else:
                    env += np.where(ok, _padded(amp, 0.0)[p] * _burst(x), 0.0)
            floor = 3.0 + np.abs(rng.normal(0, 0.6, n))
            out[f"{muscle}_{side}"] = np.clip(env * (1 + rng.normal(0, 0.05, n)) + floor, 0, 9000)
    return {k: v.astype(np.float32) for k, v in out.items()}


def _first_order_lag(x: np.ndarray, alpha: float) -> np.ndarray:
    """``scipy.signal.lfilter([alpha], [1, alpha - 1], x)`` with the same operations in the same order
    (direct form II transposed), so bit-identical; avoids importing scipy.signal (~2 s) per process."""
    a1 = alpha - 1
    ys = []
    z = 0.0
    for xn in np.asarray(x, dtype=float).tolist():
        yn = z + alpha * xn
        ys.append(yn)
        z = 0.0 * xn - a1 * yn
    return np.array(ys, dtype=float)


def watch_series(gait: SessionGait, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """1 Hz watch series over the session (index = seconds since start).

    HR follows ``rest + (max - rest)(0.35 + 0.5 x speed / (1.4 x easy speed))`` through a first-order
    lag (tau 30 s) plus cardiac drift (+0.06 bpm/min) and noise. Distance integrates speed.
    """
    tr = gait.traits
    n = gait.duration_s
    spd = gait.speed_m_s
    rel = np.clip(spd / (1.4 * tr.easy_speed_m_s), 0, 1.2)
    target = tr.resting_hr_bpm + (tr.max_hr_bpm - tr.resting_hr_bpm) * (0.35 + 0.5 * rel)
    target = target + 0.06 * np.arange(n) / 60.0 * (spd > 0)
    alpha = 1 / 30.0
    start = tr.resting_hr_bpm + 25.0
    hr = _first_order_lag(target - start, alpha) + start
    hr = np.clip(np.round(hr + rng.normal(0, 1.2, n)), 30, min(tr.max_hr_bpm, 245))
    cad = gait.cadence_spm
    gps_speed = np.clip(spd * (1 + rng.normal(0, 0.02, n)), 0, 14.9)
    distance = np.cumsum(spd)
    both = np.concatenate([gait.left.stance_s, gait.right.stance_s])
    gct_ms = 1000 * np.nanmean(both) if np.isfinite(both).any() else np.nan
    gct_series = np.interp(
        np.arange(n),
        np.concatenate([gait.left.ic, gait.right.ic])[np.isfinite(both)] if np.isfinite(both).any() else [0],
        1000 * both[np.isfinite(both)] if np.isfinite(both).any() else [gct_ms],
    )
    running = spd > 0
    step_len = np.where(cad > 0, spd * 60.0 / np.maximum(cad, 1) * 1000, 0.0)
    vo_mm = np.full(n, 10 * gait.vo_cm) * (1 + rng.normal(0, 0.03, n))
    return {
        "heart_rate_bpm": hr.astype(int),
        "speed_m_s": np.round(gps_speed, 3),
        "distance_m": np.round(distance, 2),
        "cadence_spm": np.round(cad + rng.normal(0, 0.5, n) * running, 1),
        "ground_contact_time_ms": np.round(np.clip(gct_series, 50, 1999), 1),
        "ground_contact_balance_left_pct": np.round(
            np.clip(tr.gct_balance_left_pct + rng.normal(0, 0.4, n), 0, 100), 2
        ),
        "vertical_oscillation_mm": np.round(np.clip(vo_mm, 0, 399), 1),
        "step_length_mm": np.round(step_len, 0),
        "vertical_ratio_pct": np.round(np.where(step_len > 0, vo_mm / np.maximum(step_len, 1) * 100, 0), 2),
        "power_w": np.round(np.clip(tr.body_mass_kg * spd * 1.04 * (1 + rng.normal(0, 0.03, n)), 0, 2999)),
        "running": running,
    }
