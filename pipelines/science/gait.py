"""Gait-event detection for one foot-worn IMU (plain numpy/scipy, no Beam).

Expected input signals (the contract for real devices *and* the fleet simulator)
================================================================================

Frame
-----
Foot IMU data follow gaitmap's **foot sensor frame** (FSF), identical for both feet:

* ``x`` points to the tip of the shoe (anterior), ``y`` points to the **left**, ``z`` points **up**.
* Right-handed; the gyroscope is positive for a counter-clockwise rotation about each axis
  (right-hand rule).
* Accelerometer in m/s^2 **with gravity**: a sensor lying flat at rest reads ``acc_z = +9.81``.
* Gyroscope in deg/s.

The sagittal (pitch) rotation axis is ``y`` for **both** feet and needs **no left/right sign flip**:
``+gyr_y`` = plantarflexion (toes rotate down), ``-gyr_y`` = dorsiflexion (toes rotate up).
(gaitmap's foot *body* frame uses ``gyr_ml = -gyr_y`` for both feet; the medio-lateral acceleration
``acc_y`` and the rotations ``gyr_x``/``gyr_z`` *do* flip sign between feet, but this detector only uses
``gyr_y`` and the acceleration norm, so it is foot-independent.)

What the sagittal gyro (``gyr_y``) and the acceleration look like over one gait cycle
------------------------------------------------------------------------------------
1. **Mid-stance / foot flat** (``min_vel``): foot still on the ground, ``|gyr| ~ 0`` and
   ``|acc| ~ 9.81 m/s^2``; the detector takes the minimum of the 50 ms moving mean of ``|gyr|``.
2. **Heel-off / push-off**: the heel rises, the foot rotates toes-down, ``gyr_y`` rises to a large
   **positive** peak (walking ~300-600 deg/s, running ~500-1200 deg/s).
3. **Toe-off / terminal contact** (``tc``): defined as the **time of that positive ``gyr_y`` maximum**
   (peak plantarflexion rate, gaitmap/Rampp convention ``argmin(gyr_ml)``). Right after it ``gyr_y`` drops
   steeply through zero.
4. **Swing**: the foot swings forward and rotates toes-up: ``gyr_y`` is **strongly negative**
   (walking -250..-500 deg/s, running -600..-1200 deg/s) for 0.3-0.5 s. The minimum of the low-passed
   ``gyr_y`` (``swing_peak``) is used to segment the recording; it must be below -80 deg/s.
5. **Initial contact** (``ic``): at the end of swing the toes-up rotation is stopped by the ground;
   ``ic`` is defined as the **first upward zero crossing (negative -> positive) of ``gyr_y`` after the
   swing minimum**. At that moment the impact starts: ``|acc|`` rises to its impact peak within
   ~10-60 ms, and ``gyr_y`` goes positive (rear-/mid-foot strike: heel-to-foot-flat plantarflexion).
6. **Loading response**: positive ``gyr_y`` lobe (foot slap) back to foot flat (1.).

A simulator that wants the detector to recover its true events to within one sample must therefore put
``tc`` at the positive ``gyr_y`` maximum before swing and ``ic`` at the negative->positive zero crossing of
``gyr_y`` after swing, with ``gyr_y`` crossing zero only once between the swing minimum and ``ic``.
Fractional (sub-sample) event positions are returned: ``ic`` by linear interpolation of the zero crossing,
``tc`` by parabolic interpolation of the peak, so results are the same in seconds at 100, 200, 204.8 or
400 Hz.

Limitations (flagged honestly, not hidden)
------------------------------------------
* The sensor must be aligned to the FSF (sagittal rotation on ``gyr_y``); a pod rotated about its ``z``
  axis mixes pitch into ``gyr_x`` and weakens the features. Align first (e.g. with gaitmap's alignment
  tools in a notebook); the detector does not auto-rotate.
* Fore-foot strikers whose foot keeps plantarflexing into contact (``gyr_y`` already > 0 before IC and
  negative right after it) violate point 5; their IC is then placed at the next upward crossing and the
  stride is usually flagged by the contact/stride-time plausibility checks in ``stride_features``.
* Pivot steps while turning are real steps and are reported (gaitmap's reference leaves one unannotated).

All windows, cut-off frequencies and thresholds below are in seconds, Hz, or physical units; none is in
samples, so the detector needs no retuning across sampling rates (>= ~100 Hz) or between walking and
running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import signal
from scipy.ndimage import uniform_filter1d

__all__ = ["GaitDetectionParams", "GaitEvents", "detect_gait_events"]

SAGITTAL_GYR_AXIS = 1  # gyr_y in gaitmap's foot sensor frame (both feet)


@dataclass(frozen=True)
class GaitDetectionParams:
    """Physical parameters of :func:`detect_gait_events` (all in seconds, Hz, deg/s).

    Attributes
    ----------
    segmentation_cutoff_hz
        Low-pass cut-off (zero-phase 2nd-order Butterworth) used only to find swing minima.
    min_swing_gyr_deg_s
        A swing minimum of the low-passed ``gyr_y`` must be below ``-min_swing_gyr_deg_s``.
    relative_swing_depth
        Swing minima shallower than this fraction of the median swing depth are ignored
        (shuffles, weight shifts).
    min_stride_time_s
        Minimum distance between two swing minima of the same foot.
    max_swing_to_ic_s
        IC is searched at most this long after the swing minimum.
    max_tc_to_swing_s
        TC is searched at most this long before the swing minimum.
    still_window_s
        Moving-mean window on ``|gyr|`` used to find mid-stance (``min_vel``).
    min_stride_time_ok_s, max_stride_time_ok_s
        Plausible stride-time range for the quality flag.
    """

    segmentation_cutoff_hz: float = 6.0
    min_swing_gyr_deg_s: float = 80.0
    relative_swing_depth: float = 0.2
    min_stride_time_s: float = 0.35
    max_swing_to_ic_s: float = 0.5
    max_tc_to_swing_s: float = 0.6
    still_window_s: float = 0.05
    min_stride_time_ok_s: float = 0.4
    max_stride_time_ok_s: float = 2.0


@dataclass
class GaitEvents:
    """Gait events of one foot, one row per stride (IC to next IC of the same foot).

    All positions are **fractional sample indices** into the input arrays (float, NaN when not found);
    divide by ``sample_rate_hz`` for seconds. Stride ``k`` runs from ``ic[k]`` to ``ic_next[k]`` and
    contains, in this order, ``min_vel[k]`` (mid-stance), ``tc[k]`` (toe-off) and ``swing_peak[k]``.

    Attributes
    ----------
    ic, tc, min_vel, swing_peak, ic_next
        Event positions (fractional samples).
    quality_ok
        ``True`` when all events were found, are ordered ``ic < min_vel < tc < swing_peak < ic_next``,
        the signal has no gap (NaN) inside the stride and the stride time is plausible.
    quality_reason
        ``""`` when ``quality_ok``; otherwise ``;``-joined reasons (``missing_event``, ``event_order``,
        ``data_gap``, ``stride_time``).
    sample_rate_hz
        Sampling rate of the input (Hz).
    """

    ic: np.ndarray
    tc: np.ndarray
    min_vel: np.ndarray
    swing_peak: np.ndarray
    ic_next: np.ndarray
    quality_ok: np.ndarray
    quality_reason: np.ndarray
    sample_rate_hz: float
    all_ic: np.ndarray = field(default_factory=lambda: np.empty(0))
    all_tc: np.ndarray = field(default_factory=lambda: np.empty(0))

    def __len__(self) -> int:
        return len(self.ic)

    def times_s(self, name: str) -> np.ndarray:
        """Event ``name`` (e.g. ``"ic"``) in seconds from the first sample: ``index / sample_rate_hz``."""
        return np.asarray(getattr(self, name), dtype=float) / self.sample_rate_hz


@lru_cache(maxsize=64)
def _butter_lowpass(cutoff_hz: float, fs: float) -> np.ndarray:
    return signal.butter(2, min(cutoff_hz, 0.45 * fs), btype="low", fs=fs, output="sos")


def _lowpass(x: np.ndarray, cutoff_hz: float, fs: float) -> np.ndarray:
    """Zero-phase 2nd-order Butterworth low-pass (no time shift of peaks or zero crossings)."""
    return signal.sosfiltfilt(_butter_lowpass(float(cutoff_hz), float(fs)), x)


def _fill_nan(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN samples (gaps are flagged separately)."""
    x = np.asarray(x, dtype=float)
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    if bad.all():
        return np.zeros_like(x)
    idx = np.arange(len(x))
    out = x.copy()
    out[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
    return out


def _parabolic_peak(x: np.ndarray, i: int) -> float:
    """Sub-sample position of the extremum at ``i`` from a parabola through ``x[i-1], x[i], x[i+1]``."""
    if i <= 0 or i >= len(x) - 1:
        return float(i)
    a, b, c = float(x[i - 1]), float(x[i]), float(x[i + 1])
    den = a - 2.0 * b + c
    if den == 0.0:
        return float(i)
    return i + min(0.5, max(-0.5, 0.5 * (a - c) / den))


def _find_swings(gyr_sag: np.ndarray, fs: float, p: GaitDetectionParams) -> np.ndarray:
    lp = _lowpass(gyr_sag, p.segmentation_cutoff_hz, fs)
    peaks, props = signal.find_peaks(
        -lp,
        height=p.min_swing_gyr_deg_s,
        prominence=p.min_swing_gyr_deg_s,
        distance=max(1, int(round(p.min_stride_time_s * fs))),
    )
    if len(peaks) == 0:
        return peaks
    depth = props["peak_heights"]
    keep = depth >= p.relative_swing_depth * np.median(depth)
    return peaks[keep]


def _find_ic(gyr: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """First negative -> positive zero crossing of ``gyr`` in each ``[start, stop)``, linearly interpolated.

    With ``gyr[i] < 0 <= gyr[i + 1]`` the crossing is at ``i + (-gyr[i]) / (gyr[i + 1] - gyr[i])``.
    """
    up = np.flatnonzero((gyr[:-1] < 0) & (gyr[1:] >= 0))
    out = np.full(len(starts), np.nan)
    if len(up) == 0:
        return out
    j = np.searchsorted(up, starts, side="left")
    has = j < len(up)
    i = up[np.minimum(j, len(up) - 1)]
    has &= i + 1 < stops
    i = i[has]
    a, b = gyr[i], gyr[i + 1]
    out[has] = i + (-a) / (b - a)
    return out


def detect_gait_events(
    acc_m_s2: np.ndarray,
    gyr_deg_s: np.ndarray,
    sample_rate_hz: float,
    params: GaitDetectionParams | None = None,
) -> GaitEvents:
    """Detect initial contact (IC), toe-off (TC) and mid-stance of one foot, per stride.

    Template-free: swing phases are the minima of the low-passed sagittal gyro ``gyr_y``; around each
    swing minimum ``s``:

    * ``tc`` = argmax of ``gyr_y`` on ``[min_vel, s]`` (peak plantarflexion rate at push-off), refined by
      a parabola through the three samples around the maximum;
    * ``ic`` = first sample pair after ``s`` with ``gyr_y[i] < 0 <= gyr_y[i+1]``, position
      ``i + (-gyr_y[i]) / (gyr_y[i+1] - gyr_y[i])`` (linear interpolation);
    * ``min_vel`` = argmin over ``[ic_prev, s]`` of the ``still_window_s`` moving mean of ``|gyr|``.

    See the module docstring for the expected signal shapes and the sensor frame.

    Parameters
    ----------
    acc_m_s2
        (n, 3) acceleration in gaitmap's foot sensor frame, m/s^2, gravity included. Used to flag data
        gaps (NaN); impact features are computed in :mod:`pipelines.science.stride_features`.
    gyr_deg_s
        (n, 3) angular rate in gaitmap's foot sensor frame, deg/s. Same frame for left and right foot.
    sample_rate_hz
        Sampling rate in Hz (>= ~100 Hz recommended).
    params
        Physical detection parameters; defaults suit walking and running.

    Returns
    -------
    GaitEvents
        One row per stride (IC to next IC) plus ``all_ic`` / ``all_tc``: every IC and TC found, also
        those at the recording edges that do not close a full stride.
    """
    p = params or GaitDetectionParams()
    fs = float(sample_rate_hz)
    acc = np.asarray(acc_m_s2, dtype=float)
    gyr = np.asarray(gyr_deg_s, dtype=float)
    if gyr.ndim != 2 or gyr.shape[1] != 3 or acc.shape != gyr.shape:
        raise ValueError(f"acc and gyr must both be (n, 3) arrays, got {acc.shape} and {gyr.shape}")
    if not fs > 0:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    n = len(gyr)
    gap = ~(np.isfinite(gyr).all(axis=1) & np.isfinite(acc).all(axis=1))
    gyr_f = np.column_stack([_fill_nan(gyr[:, k]) for k in range(3)])
    sag = gyr_f[:, SAGITTAL_GYR_AXIS]

    empty = np.empty(0)
    min_len = int(round(2 * p.min_stride_time_s * fs))
    swings = _find_swings(sag, fs, p) if n > max(min_len, 16) else np.empty(0, dtype=int)
    if len(swings) == 0:
        return GaitEvents(
            empty, empty, empty, empty, empty, np.empty(0, bool), np.empty(0, object), fs, empty, empty
        )

    gyr_norm = np.sqrt(np.einsum("ij,ij->i", gyr_f, gyr_f))
    still = uniform_filter1d(gyr_norm, size=max(1, int(round(p.still_window_s * fs))), mode="nearest")

    n_sw = len(swings)
    tc = np.full(n_sw, np.nan)  # TC before swing k
    ms = np.full(n_sw, np.nan)  # mid-stance before TC k
    max_ic = int(round(p.max_swing_to_ic_s * fs))
    max_tc = int(round(p.max_tc_to_swing_s * fs))
    stops = np.minimum(np.minimum(swings + max_ic, n), np.append(swings[1:], n))
    ic = _find_ic(sag, swings, stops)
    for k, s in enumerate(swings.tolist()):
        lo = max(0, s - max_tc)
        if k > 0:
            prev = ic[k - 1] if np.isfinite(ic[k - 1]) else swings[k - 1]
            lo = max(lo, int(np.ceil(prev)) + 1)
        if s - lo < 2:
            continue
        m = lo + int(np.argmin(still[lo:s]))
        ms[k] = float(m)
        j = m + int(np.argmax(sag[m : s + 1]))
        if sag[j] > 0:
            tc[k] = _parabolic_peak(sag, j)

    # stride k: IC after swing k -> min_vel, TC before swing k+1 -> IC after swing k+1
    s_ic = ic[:-1]
    s_ms = ms[1:]
    s_tc = tc[1:]
    s_sw = swings[1:].astype(float)
    s_next = ic[1:]
    n_st = len(s_ic)
    ev = np.column_stack([s_ic, s_ms, s_tc, s_sw, s_next])
    missing = ~np.isfinite(ev).all(axis=1)
    with np.errstate(invalid="ignore"):
        order = ~missing & ~(np.diff(ev, axis=1) > 0).all(axis=1)
        a = np.clip(np.floor(np.nan_to_num(s_ic)).astype(int), 0, n)
        b = np.clip(np.ceil(np.nan_to_num(s_next)).astype(int) + 1, 0, n)
        cum_gap = np.concatenate([[0], np.cumsum(gap)])
        gapped = ~missing & (cum_gap[b] - cum_gap[a] > 0)
        st = (s_next - s_ic) / fs
        bad_st = ~missing & ~((st >= p.min_stride_time_ok_s) & (st <= p.max_stride_time_ok_s))
    flags = (
        ("missing_event", missing),
        ("event_order", order),
        ("data_gap", gapped),
        ("stride_time", bad_st),
    )
    ok = ~(missing | order | gapped | bad_st)
    reasons = np.array([""] * n_st, dtype=object)
    for k in np.flatnonzero(~ok):
        reasons[k] = ";".join(name for name, f in flags if f[k])
    return GaitEvents(
        ic=s_ic,
        tc=s_tc,
        min_vel=s_ms,
        swing_peak=s_sw,
        ic_next=s_next,
        quality_ok=ok,
        quality_reason=reasons,
        sample_rate_hz=fs,
        all_ic=ic[np.isfinite(ic)],
        all_tc=tc[np.isfinite(tc)],
    )
