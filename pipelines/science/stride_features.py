"""Per-stride foot features from detected gait events (plain numpy/pandas, no Beam).

Grain: one row per stride per foot; a stride runs from an initial contact (IC) to the next IC of the
same foot. Event definitions and the sensor frame are described in :mod:`pipelines.science.gait`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.integrate import cumulative_trapezoid

from pipelines.science.gait import SAGITTAL_GYR_AXIS, GaitEvents

__all__ = [
    "FEATURE_COLUMNS",
    "StrideFeatureParams",
    "add_flight_time",
    "compute_stride_features",
    "flight_time_ms",
]

FEATURE_COLUMNS = (
    "stride_time_s",
    "cadence_spm",
    "ground_contact_time_ms",
    "swing_time_ms",
    "duty_factor",
    "peak_impact_m_s2",
    "foot_strike_angle_deg",
    "quality_ok",
    "quality_reason",
)


@dataclass(frozen=True)
class StrideFeatureParams:
    """Physical limits and windows for :func:`compute_stride_features`.

    Attributes
    ----------
    impact_window_s
        Peak impact is searched in ``[IC, IC + impact_window_s]`` (clipped at TC).
    still_window_s
        Window around mid-stance used to estimate the gyro bias for the foot-strike angle.
    stride_time_range_s, contact_time_range_ms, swing_time_range_ms
        Plausible ranges (walking and running); strides outside are flagged, not dropped.
    """

    impact_window_s: float = 0.1
    still_window_s: float = 0.05
    stride_time_range_s: tuple[float, float] = (0.4, 2.0)
    contact_time_range_ms: tuple[float, float] = (80.0, 1500.0)
    swing_time_range_ms: tuple[float, float] = (150.0, 1200.0)


def _interp(y: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Value of ``y`` at fractional sample positions (linear), NaN for NaN positions."""
    pos = np.asarray(pos, dtype=float)
    out = np.full(pos.shape, np.nan)
    ok = np.isfinite(pos)
    out[ok] = np.interp(pos[ok], np.arange(len(y)), y)
    return out


def _window_nanmax(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, use: np.ndarray) -> np.ndarray:
    """``nanmax(x[lo_k:hi_k])`` per window (windows clipped to ``x``), NaN for unused, empty or all-NaN
    windows; one ``maximum.reduceat`` over the interleaved bounds instead of a loop."""
    n = len(x)
    lo = np.clip(lo, 0, n)
    hi = np.clip(hi, 0, n)
    use = use & (hi > lo)
    out = np.full(len(lo), np.nan)
    if not use.any():
        return out
    padded = np.append(np.where(np.isnan(x), -np.inf, x), -np.inf)  # index n is valid for reduceat
    bounds = np.empty(2 * int(use.sum()), np.int64)
    bounds[0::2], bounds[1::2] = lo[use], hi[use]
    peaks = np.maximum.reduceat(padded, bounds)[0::2]
    out[use] = np.where(np.isneginf(peaks), np.nan, peaks)
    return out


def _window_mean(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, use: np.ndarray) -> np.ndarray:
    """``mean(x[lo_k:hi_k])`` per window (clipped to ``x``) from one cumulative sum; NaN for unused or
    empty windows."""
    n = len(x)
    lo = np.clip(lo, 0, n)
    hi = np.clip(hi, 0, n)
    use = use & (hi > lo)
    out = np.full(len(lo), np.nan)
    csum = np.concatenate([[0.0], np.cumsum(x, dtype=float)])
    out[use] = (csum[hi[use]] - csum[lo[use]]) / (hi[use] - lo[use])
    return out


def compute_stride_features(
    events: GaitEvents,
    acc_m_s2: np.ndarray,
    gyr_deg_s: np.ndarray,
    params: StrideFeatureParams | None = None,
) -> pd.DataFrame:
    """Per-stride temporal, impact and foot-strike features of one foot.

    With event times ``IC_k``, ``TC_k`` (toe-off inside stride ``k``), ``IC_{k+1}`` in seconds
    (fractional sample index / ``fs``):

    * ``stride_time_s = IC_{k+1} - IC_k``
    * ``cadence_spm = 120 / stride_time_s`` (steps per minute; one stride = two steps)
    * ``ground_contact_time_ms = 1000 (TC_k - IC_k)``
    * ``swing_time_ms = 1000 (IC_{k+1} - TC_k)``
    * ``duty_factor = ground_contact_time_ms / (1000 stride_time_s)`` (dimensionless, 0..1)
    * ``peak_impact_m_s2 = max |acc|`` over ``[IC_k, min(IC_k + impact_window_s, TC_k)]`` (m/s^2,
      gravity included)
    * ``foot_strike_angle_deg = ∫_{IC_k}^{MS_k} (gyr_y - b) dt`` where ``MS_k`` is mid-stance (foot flat,
      angle 0) and ``b`` the mean ``gyr_y`` in ``still_window_s`` around ``MS_k`` (gyro bias). Because
      ``+gyr_y`` is plantarflexion, this is the foot's sagittal angle at IC relative to foot flat, positive
      = toes up = heel strike (~10-25 deg), ~0 = mid-foot, negative = fore-foot strike. It is a proxy for
      overstriding.
    * ``quality_ok`` / ``quality_reason``: detector reasons plus ``stride_time``, ``contact_time``,
      ``swing_time`` when outside the plausible ranges of :class:`StrideFeatureParams`.

    Parameters
    ----------
    events
        Output of :func:`pipelines.science.gait.detect_gait_events` for the same arrays.
    acc_m_s2, gyr_deg_s
        (n, 3) arrays in gaitmap's foot sensor frame (m/s^2 incl. gravity, deg/s).
    params
        Windows and plausibility limits.

    Returns
    -------
    pandas.DataFrame
        One row per stride with the columns of ``FEATURE_COLUMNS`` plus event times ``ic_s``, ``tc_s``,
        ``min_vel_s``, ``ic_next_s`` (seconds from the first sample).
    """
    p = params or StrideFeatureParams()
    fs = events.sample_rate_hz
    acc = np.asarray(acc_m_s2, dtype=float)
    gyr = np.asarray(gyr_deg_s, dtype=float)
    ic, tc, ms, nxt = (
        np.asarray(a, dtype=float) for a in (events.ic, events.tc, events.min_vel, events.ic_next)
    )
    n = len(ic)

    stride_s = (nxt - ic) / fs
    contact_ms = 1000.0 * (tc - ic) / fs
    swing_ms = 1000.0 * (nxt - tc) / fs
    with np.errstate(divide="ignore", invalid="ignore"):
        cadence = 120.0 / stride_s
        duty = contact_ms / (1000.0 * stride_s)

    acc_norm = np.linalg.norm(acc, axis=1)
    win = p.impact_window_s * fs
    valid = np.isfinite(ic) & np.isfinite(tc)
    lo = np.zeros(n, np.int64)
    hi = np.zeros(n, np.int64)
    lo[valid] = np.floor(ic[valid]).astype(np.int64)
    hi[valid] = np.ceil(np.minimum(ic[valid] + win, tc[valid])).astype(np.int64) + 1
    peak = _window_nanmax(acc_norm, lo, hi, valid)

    sag = np.nan_to_num(gyr[:, SAGITTAL_GYR_AXIS])
    cum = cumulative_trapezoid(sag, dx=1.0 / fs, initial=0.0)
    half = max(1, int(round(0.5 * p.still_window_s * fs)))
    has_ms = np.isfinite(ms)
    m = np.zeros(n, np.int64)
    m[has_ms] = np.round(ms[has_ms]).astype(np.int64)
    bias = _window_mean(sag, m - half, m + half + 1, has_ms)
    angle = (_interp(cum, ms) - _interp(cum, ic)) - bias * (ms - ic) / fs

    ok = np.asarray(events.quality_ok, dtype=bool).copy()
    checks = (
        ("stride_time", stride_s, p.stride_time_range_s),
        ("contact_time", contact_ms, p.contact_time_range_ms),
        ("swing_time", swing_ms, p.swing_time_range_ms),
    )
    with np.errstate(invalid="ignore"):
        out_of_range = [np.isfinite(v) & ((v < lo_) | (v > hi_)) for _, v, (lo_, hi_) in checks]
    detector = [str(x) for x in events.quality_reason]
    reasons = [""] * n
    # strides with a detector reason or a value out of range (few): the reason list, one by one
    for k in np.flatnonzero(np.logical_or.reduce([*out_of_range, np.array([bool(x) for x in detector])])):
        r = [x for x in detector[k].split(";") if x]
        for (name, _, _), bad in zip(checks, out_of_range, strict=True):
            if bad[k] and name not in r:
                r.append(name)
        reasons[k] = ";".join(r)
    ok &= np.array([not r for r in reasons], dtype=bool)

    return pd.DataFrame(
        {
            "ic_s": ic / fs,
            "min_vel_s": ms / fs,
            "tc_s": tc / fs,
            "ic_next_s": nxt / fs,
            "stride_time_s": stride_s,
            "cadence_spm": cadence,
            "ground_contact_time_ms": contact_ms,
            "swing_time_ms": swing_ms,
            "duty_factor": duty,
            "peak_impact_m_s2": peak,
            "foot_strike_angle_deg": angle,
            "quality_ok": ok,
            "quality_reason": reasons,
        }
    )


def flight_time_ms(
    ic_s: np.ndarray,
    tc_s: np.ndarray,
    contralateral_ic_s: np.ndarray,
    ic_next_s: np.ndarray | None = None,
) -> np.ndarray:
    """Flight time after each stride's toe-off: ``max(0, IC_other - TC_k)`` in ms.

    ``IC_other`` is the first initial contact of the **other** foot after this stride's ``IC_k`` (and
    before ``IC_{k+1}`` when ``ic_next_s`` is given). In walking the other foot lands before this foot
    leaves the ground (double support), so the difference is negative and the flight time is 0.

    Parameters
    ----------
    ic_s, tc_s
        Per-stride IC and TC of this foot (s, same clock as the other foot).
    contralateral_ic_s
        All IC times of the other foot (s).
    ic_next_s
        Optional per-stride end (next IC of this foot, s); contralateral ICs at or after it are ignored.

    Returns
    -------
    numpy.ndarray
        Flight time per stride in ms, ``NaN`` when there is no contralateral IC in the stride.
    """
    ic = np.asarray(ic_s, dtype=float)
    tc = np.asarray(tc_s, dtype=float)
    other = np.sort(np.asarray(contralateral_ic_s, dtype=float))
    other = other[np.isfinite(other)]
    out = np.full(len(ic), np.nan)
    if len(other) == 0:
        return out
    j = np.searchsorted(other, ic, side="right")
    has = j < len(other)
    c = np.where(has, other[np.minimum(j, len(other) - 1)], np.nan)
    if ic_next_s is not None:
        c = np.where(c < np.asarray(ic_next_s, dtype=float), c, np.nan)
    valid = np.isfinite(c) & np.isfinite(tc)
    out[valid] = np.maximum(0.0, 1000.0 * (c[valid] - tc[valid]))
    return out


def add_flight_time(left: pd.DataFrame, right: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add ``flight_time_ms`` to both feet's stride tables (outputs of :func:`compute_stride_features`).

    Both tables must share a clock (``ic_s``/``tc_s`` in seconds from the same origin).
    """
    lo = left.copy()
    ro = right.copy()
    lo["flight_time_ms"] = flight_time_ms(left["ic_s"], left["tc_s"], right["ic_s"], left["ic_next_s"])
    ro["flight_time_ms"] = flight_time_ms(right["ic_s"], right["tc_s"], left["ic_s"], right["ic_next_s"])
    return lo, ro
