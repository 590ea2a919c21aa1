"""Small synthetic runner sessions as SensorBlocks (tests and benchmarks of the stream plumbing).

Foot IMU (gaitmap foot sensor frame, 200 Hz): IC at the negative->positive zero crossing of ``gyr_y``
after the swing lobe, TC at the positive push-off peak (the detector's conventions); pelvis IMU (100 Hz)
with a frontal-plane roll of ``drop_deg`` during each stance; EMG envelopes (100 Hz) with one burst per
muscle per stride starting ``onset_ms`` relative to IC. The fleet simulator (jobs/simulate) is the
realistic source; this one is tiny, fast and fully controlled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.events import EMG_CHANNELS, EMG_MUSCLES, IMU_CHANNELS, SensorBlock, SessionMarker

G = 9.81


@dataclass
class SynthSession:
    runner_id: str
    session_id: str
    start_us: int
    duration_s: int
    ic: dict[str, np.ndarray]  # true IC times (s since start) per foot
    tc: dict[str, np.ndarray]
    glute_share: float
    glute_onset_ms: float
    hamstring_onset_ms: float


def _foot_gyr_y(t: np.ndarray, ic: np.ndarray, tc: np.ndarray, swing: float = 700.0) -> np.ndarray:
    g = np.zeros_like(t)
    push, w2 = 1.5 * swing, 0.03
    w1 = np.sqrt(2.0) * w2
    dt = t[1] - t[0]
    for k in range(len(tc)):
        if k + 1 >= len(ic):
            break
        a, b = np.searchsorted(t, [tc[k] - w1 - dt, ic[k + 1] + dt])
        tt = t[a:b]
        seg = np.zeros_like(tt)
        u = (tt - (tc[k] - w1)) / w1
        m = (u >= 0) & (u <= 1)
        seg[m] = push * (1 - np.cos(np.pi * u[m])) / 2
        u = (tt - tc[k]) / w2
        m = (u > 0) & (u <= 1)
        seg[m] = push * np.cos(0.5 * np.pi * u[m])
        s0, s1 = tc[k] + w2, ic[k + 1]
        u = (tt - s0) / (s1 - s0)
        m = (u > 0) & (u < 1)
        seg[m] = -swing * np.sin(np.pi * u[m])
        g[a:b] = np.where(seg != 0, seg, g[a:b])
    for x in ic:
        a, b = np.searchsorted(t, [x, x + 0.06])
        u = (t[a:b] - x) / 0.06
        g[a:b] = 150.0 * np.sin(np.pi * u)
    return g


def make_session(
    runner_id: str,
    session_id: str,
    start_us: int,
    duration_s: int = 60,
    seed: int = 0,
    glute_share: float = 0.4,
    onset_lag_ms: float = 0.0,
    drop_deg: float = 5.0,
) -> tuple[SynthSession, list[SensorBlock], list[SessionMarker]]:
    """Blocks (1 s each, foot L/R 200 Hz, pelvis 100 Hz, EMG 100 Hz) and start/end markers of one session."""
    rng = np.random.default_rng(seed)
    stride = 0.72 * (1 + 0.03 * rng.standard_normal())
    n = int((duration_s - 2.0) / stride)
    ic_l = 1.0 + np.cumsum(np.r_[0, stride * (1 + 0.02 * rng.standard_normal(n))])
    ic_l = ic_l[ic_l < duration_s - 1.0]
    ic_r = ic_l[:-1] + 0.5 * np.diff(ic_l)
    ics = {"left": ic_l, "right": ic_r}
    tcs = {f: ics[f][:-1] + 0.25 * (1 + 0.03 * rng.standard_normal(len(ics[f]) - 1)) for f in ics}
    blocks: list[SensorBlock] = []
    t200 = np.arange(duration_s * 200) / 200.0
    t100 = np.arange(duration_s * 100) / 100.0
    for foot in ("left", "right"):
        gyr = np.zeros((len(t200), 3))
        gyr[:, 1] = _foot_gyr_y(t200, ics[foot], tcs[foot]) + rng.normal(0, 3, len(t200))
        acc = np.zeros((len(t200), 3))
        acc[:, 2] = G
        for x in ics[foot]:
            a, b = np.searchsorted(t200, [x - 0.05, x + 0.08])
            acc[a:b, 2] += 60.0 * np.exp(-0.5 * ((t200[a:b] - x - 0.015) / 0.010) ** 2)
        acc += rng.normal(0, 0.2, acc.shape)
        blocks += _blocks(
            runner_id, session_id, f"{runner_id}.foot_{foot}", "foot_imu", foot, start_us, 200, acc, gyr
        )
    # pelvis: roll +drop during left stance, -drop during right stance
    phi_rate = np.zeros(len(t100))
    for foot, sgn in (("left", 1.0), ("right", -1.0)):
        for k in range(len(tcs[foot])):
            a, b = np.searchsorted(t100, [ics[foot][k], tcs[foot][k]])
            tc_len = tcs[foot][k] - ics[foot][k]
            ph = np.pi * (t100[a:b] - ics[foot][k]) / tc_len
            phi_rate[a:b] += sgn * drop_deg * np.pi / tc_len * np.cos(ph)
    acc_p = np.zeros((len(t100), 3))
    acc_p[:, 2] = G + 6.0 * np.sin(2 * np.pi * t100 / (stride / 2))
    gyr_p = np.zeros((len(t100), 3))
    gyr_p[:, 0] = phi_rate
    blocks += _blocks(
        runner_id, session_id, f"{runner_id}.pelvis", "pelvis_imu", "center", start_us, 100, acc_p, gyr_p
    )
    # EMG: bursts relative to IC of each side
    amp = {
        "gluteus_maximus": glute_share,
        "hamstrings": (1 - glute_share) / 2,
        "gastrocnemius": (1 - glute_share) / 2,
    }
    onset = {"gluteus_maximus": onset_lag_ms / 1000.0 - 0.05, "hamstrings": -0.05}
    env: dict[str, np.ndarray] = {}
    for foot in ("left", "right"):
        for muscle in EMG_MUSCLES:
            e = np.full(len(t100), 5.0)
            on = onset.get(muscle, -0.05)
            a_m = 200.0 * amp.get(muscle, 0.3)
            for x in ics[foot][:-1]:
                a, b = np.searchsorted(t100, [x + on, x + on + 0.2])
                u = (t100[a:b] - (x + on)) / 0.2
                e[a:b] += a_m * np.sin(np.pi * u)
            env[f"{muscle}_{foot}"] = e
    emg = np.column_stack([env[c] for c in EMG_CHANNELS])
    blocks += _blocks(runner_id, session_id, f"{runner_id}.emg", "emg", "center", start_us, 100, emg, None)
    blocks.sort(key=lambda b: (b.start_time_us, b.device_id))
    markers = [
        SessionMarker(runner_id, f"{runner_id}.watch", session_id, 0, start_us, "start", "simulator"),
        SessionMarker(
            runner_id,
            f"{runner_id}.watch",
            session_id,
            1,
            start_us + duration_s * 1_000_000,
            "end",
            "simulator",
        ),
    ]
    truth = SynthSession(
        runner_id, session_id, start_us, duration_s, ics, tcs, glute_share, onset_lag_ms - 50.0, -50.0
    )
    return truth, blocks, markers


def _blocks(runner, session, device, sensor, side, start_us, fs, a, b) -> list[SensorBlock]:
    if sensor == "emg":
        names, units, data = list(EMG_CHANNELS), EMG_CHANNELS, a
    else:
        names, units, data = list(IMU_CHANNELS), IMU_CHANNELS, np.column_stack([a, b])
    out = []
    for k in range(len(data) // fs):
        chunk = data[k * fs : (k + 1) * fs].astype(np.float32)
        out.append(
            SensorBlock(
                runner_id=runner,
                device_id=device,
                session_id=session,
                seq=k,
                sensor=sensor,
                side=side,
                start_time_us=start_us + k * 1_000_000,
                sample_rate_hz=float(fs),
                n_samples=fs,
                channels={c: np.ascontiguousarray(chunk[:, i]) for i, c in enumerate(names)},
                units=dict(units),
            )
        )
    return out
