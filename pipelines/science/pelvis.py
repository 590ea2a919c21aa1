"""Per-stride pelvis features from a sacrum/pelvis IMU (plain numpy, no Beam).

Sensor frame (same convention as the foot sensor frame of :mod:`pipelines.science.gait`): ``x`` anterior,
``y`` to the runner's **left**, ``z`` up; accelerometer in m/s^2 with gravity, gyroscope in deg/s,
right-handed. A positive rotation about ``x`` (roll, frontal plane) lifts the left side of the pelvis, i.e.
**drops the right side**.

Both features are computed per stride ``[IC_k, IC_{k+1})`` of one foot and assume the stride is periodic
(start and end posture equal), which removes integration drift without any filter state: the same stride
gives the same result whether it was cut from a whole session or from a streamed chunk.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pelvic_drop_deg", "stride_pelvis_features", "vertical_oscillation_mm"]


def _cumtrapz(y: np.ndarray, dt: np.ndarray) -> np.ndarray:
    out = np.zeros(len(y))
    if len(y) > 1:
        out[1:] = np.cumsum(0.5 * (y[1:] + y[:-1]) * dt)
    return out


def _detrend_linear(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    if len(x) < 2 or t[-1] == t[0]:
        return x - x.mean() if len(x) else x
    slope = (x[-1] - x[0]) / (t[-1] - t[0])
    return x - x[0] - slope * (t - t[0])


def vertical_oscillation_mm(t_s: np.ndarray, acc_m_s2: np.ndarray) -> float:
    """Peak-to-peak vertical excursion of the pelvis over one stride, mm.

    The vertical is the mean gravity direction over the stride, ``u = mean(a) / |mean(a)|``; the vertical
    dynamic acceleration is ``a_v(t) = a(t)·u - |mean(a)|`` (m/s^2). It is integrated twice with the
    trapezoid rule, ``v = ∫ a_v dt`` and ``d = ∫ (v - trend(v)) dt``, removing the linear trend of ``v``
    and ``d`` (periodic stride: no net change in vertical velocity or height). Result:
    ``VO = 1000 (max d - min d)``.

    Parameters
    ----------
    t_s : (n,) sample times, s.
    acc_m_s2 : (n, 3) pelvis acceleration, m/s^2, gravity included.

    Returns
    -------
    float
        Vertical oscillation in mm (NaN with fewer than 4 samples).
    """
    acc = np.asarray(acc_m_s2, dtype=float)
    t = np.asarray(t_s, dtype=float)
    if len(t) < 4 or not np.isfinite(acc).all():
        return float("nan")
    g = acc.mean(axis=0)
    g_norm = float(np.linalg.norm(g))
    if g_norm == 0:
        return float("nan")
    a_v = acc @ (g / g_norm) - g_norm
    dt = np.diff(t)
    v = _detrend_linear(_cumtrapz(a_v, dt), t)
    d = _detrend_linear(_cumtrapz(v, dt), t)
    return float(1000.0 * (d.max() - d.min()))


def pelvic_drop_deg(t_s: np.ndarray, gyr_deg_s: np.ndarray, stance_end_s: float, foot: str) -> float:
    """Contralateral pelvic drop during this foot's stance, deg (frontal plane).

    The frontal-plane (roll) angle relative to its value at IC is ``φ(t) = ∫_{IC}^{t} ω_x dt`` with the
    linear trend over the stride removed (periodic stride). With ``+ω_x`` dropping the right side:

    * left-foot stance (the right side is unsupported): ``drop = max φ`` over ``[IC, TC]``
    * right-foot stance: ``drop = -min φ`` over ``[IC, TC]``

    Positive = the swing side dropped below its level at IC (Trendelenburg-like); typical running values
    are 3-8 deg.

    Parameters
    ----------
    t_s : (n,) sample times of one stride ``[IC, next IC)``, s (``t_s[0]`` at or just after IC).
    gyr_deg_s : (n, 3) pelvis angular rate, deg/s.
    stance_end_s : toe-off time (same clock as ``t_s``); NaN uses the first 40 % of the stride.
    foot : ``"left"`` or ``"right"``: the stance foot of this stride.
    """
    t = np.asarray(t_s, dtype=float)
    gyr = np.asarray(gyr_deg_s, dtype=float)
    if len(t) < 4 or not np.isfinite(gyr).all():
        return float("nan")
    phi = _detrend_linear(_cumtrapz(gyr[:, 0], np.diff(t)), t)
    end = stance_end_s if np.isfinite(stance_end_s) else t[0] + 0.4 * (t[-1] - t[0])
    stance = phi[t <= end]
    if len(stance) == 0:
        return float("nan")
    return float(stance.max() if foot == "left" else -stance.min())


def _segment_matrix(lo: np.ndarray, hi: np.ndarray, n_t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index matrix ``(k, L)`` of the samples ``[lo[k], hi[k])`` (clipped past each end), its mask, lengths."""
    lens = hi - lo
    width = int(lens.max()) if len(lens) else 0
    col = np.arange(width)
    idx = np.minimum(lo[:, None] + col, n_t - 1)
    return idx, col < lens[:, None], lens


def _cumtrapz_rows(y: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Row-wise :func:`_cumtrapz` (``dt`` is 0 past each row's end, so the tail stays constant)."""
    out = np.zeros(y.shape)
    if y.shape[1] > 1:
        out[:, 1:] = np.cumsum(0.5 * (y[:, 1:] + y[:, :-1]) * dt, axis=1)
    return out


def _detrend_rows(x: np.ndarray, t: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Row-wise :func:`_detrend_linear` (rows have ``t[last] > t[0]``)."""
    r = np.arange(len(x))
    slope = (x[r, last] - x[:, 0]) / (t[r, last] - t[:, 0])
    return x - x[:, :1] - slope[:, None] * (t - t[:, :1])


def stride_pelvis_features(
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
    (default 1.5 sample periods), get NaN. All times in seconds on one clock.

    Vectorised over strides (one padded ``(strides, samples)`` matrix): the same arithmetic as
    :func:`vertical_oscillation_mm` / :func:`pelvic_drop_deg` per stride (equal to them within rounding
    of the per-stride mean and projection, ~1e-13 relative); the per-stride loop in tests/test_stream_science_vectorised.py is the
    per-stride reference.
    """
    t = np.asarray(t_s, dtype=float)
    acc = np.asarray(acc_m_s2, dtype=float)
    gyr = np.asarray(gyr_deg_s, dtype=float)
    ic = np.asarray(ic_s, dtype=float)
    nx = np.asarray(ic_next_s, dtype=float)
    tc = np.asarray(tc_s, dtype=float)
    n = len(ic)
    vo = np.full(n, np.nan)
    drop = np.full(n, np.nan)
    if len(t) < 4 or n == 0:
        return vo, drop
    period = float(np.median(np.diff(t)))
    max_gap = max_gap_s if max_gap_s is not None else 1.5 * period
    lo = np.searchsorted(t, ic, side="left")
    hi = np.searchsorted(t, nx, side="left")
    gaps = np.concatenate([[0], np.cumsum(np.diff(t) > max_gap)])  # gaps[i]: gaps among t[:i+1]
    ok = hi - lo >= 4
    a, b = lo[ok], hi[ok]
    sel = np.flatnonzero(ok)
    ok2 = (t[a] - ic[sel] <= max_gap) & (nx[sel] - t[b - 1] <= max_gap) & (gaps[b - 1] == gaps[a])
    sel, a, b = sel[ok2], a[ok2], b[ok2]
    # identical start/end time cannot happen with >= 4 increasing samples; keep the scalar path if it does
    flat = t[b - 1] == t[a]
    for k in sel[flat]:
        s = slice(int(lo[k]), int(hi[k]))
        vo[k] = vertical_oscillation_mm(t[s], acc[s])
        drop[k] = pelvic_drop_deg(t[s], gyr[s], tc[k], foot)
    sel, a, b = sel[~flat], a[~flat], b[~flat]
    if len(sel) == 0:
        return vo, drop
    idx, mask, lens = _segment_matrix(a, b, len(t))
    last = lens - 1
    rows = np.arange(len(sel))
    T = t[idx]
    dt = np.where(mask[:, 1:], np.diff(T, axis=1), 0.0)
    # vertical oscillation
    A = acc[idx]  # (k, L, 3)
    fin_a = np.where(mask[:, :, None], np.isfinite(A), True).all(axis=(1, 2))
    A = np.where(mask[:, :, None], A, 0.0)
    g = A.sum(axis=1) / lens[:, None]
    g_norm = np.sqrt((g * g).sum(axis=1))
    good = fin_a & (g_norm != 0)
    u = g / np.where(g_norm == 0, 1.0, g_norm)[:, None]
    a_v = np.einsum("kls,ks->kl", A, u) - g_norm[:, None]
    v = _detrend_rows(_cumtrapz_rows(a_v, dt), T, last)
    d = _detrend_rows(_cumtrapz_rows(v, dt), T, last)
    span = np.where(mask, d, -np.inf).max(axis=1) - np.where(mask, d, np.inf).min(axis=1)
    vo[sel[good]] = 1000.0 * span[good]
    # pelvic drop
    G = gyr[idx, 0]
    fin_g = np.where(mask, np.isfinite(G), True).all(axis=1)
    G = np.where(mask, G, 0.0)
    phi = _detrend_rows(_cumtrapz_rows(G, dt), T, last)
    tck = tc[sel]
    end = np.where(np.isfinite(tck), tck, T[:, 0] + 0.4 * (T[rows, last] - T[:, 0]))
    stance = mask & (T <= end[:, None])
    has = stance.any(axis=1) & fin_g
    if foot == "left":
        val = np.where(stance, phi, -np.inf).max(axis=1)
    else:
        val = -np.where(stance, phi, np.inf).min(axis=1)
    drop[sel[has]] = val[has]
    return vo, drop


#: the strides table columns :func:`stride_columns` fills
STRIDE_COLUMNS: tuple[str, ...] = ("vertical_oscillation_mm", "pelvic_drop_deg")


def stride_columns(
    t_s: np.ndarray,
    data: np.ndarray,
    ic_s: np.ndarray,
    tc_s: np.ndarray,
    ic_next_s: np.ndarray,
    foot: str,
    max_gap_s: float,
    reference: dict,
) -> dict[str, np.ndarray]:
    """The pelvis IMU's stride columns (see :func:`stride_pelvis_features`): ``data`` holds the
    channels ``acc_x, acc_y, acc_z`` (m/s^2) and ``gyr_x, gyr_y, gyr_z`` (deg/s) in that order, ``t_s``
    the sample times on the strides' clock. ``reference`` (per-session state) is not used."""
    vo, drop = stride_pelvis_features(t_s, data[:, 0:3], data[:, 3:6], ic_s, tc_s, ic_next_s, foot, max_gap_s)
    return {"vertical_oscillation_mm": vo, "pelvic_drop_deg": drop}
