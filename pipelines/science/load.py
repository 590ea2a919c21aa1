"""Training load: TRIMP, impact load, EWMA acute/chronic load, monotony, strain and session spikes.

Plain numpy/pandas, no Beam. Every function takes arrays with units in the argument names and
returns plain numbers or arrays; formulas are in the docstrings and in ``docs/load.md``.

Heart rate enters TRIMP through a **time-at-heart-rate histogram**: ``hr_seconds[b]`` is the time
(s) spent at ``b`` bpm (HR is an integer in the watch records). Because TRIMP is a sum over records
of a function of HR, summing over the histogram gives exactly the per-record sum, and histograms of
sessions add up into days and rolling windows (used to estimate HRmax/HRrest from history).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BANISTER",
    "EDWARDS_ZONE_EDGES",
    "G0_M_S2",
    "HR_BINS",
    "HrParams",
    "acute_chronic",
    "acwr",
    "age_from_birth_year_band",
    "banister_coefficients",
    "banister_trimp",
    "banister_trimp_from_histogram",
    "edwards_trimp",
    "edwards_trimp_from_histogram",
    "ewma",
    "ewma_truncated",
    "hr_histogram",
    "hr_params",
    "impact_load_g",
    "monotony_strain",
    "record_dt_s",
    "session_spike",
    "weighted_percentile_bpm",
]

#: number of 1-bpm histogram bins (0..255 bpm); values above are clipped into the last bin
HR_BINS = 256
#: standard gravity (m/s^2), converts peak impacts to g
G0_M_S2 = 9.80665
#: largest gap between records counted as exercise time (s); longer gaps are pauses
MAX_RECORD_DT_S = 5.0
#: Banister weighting y = a * exp(b * HRr): men (0.64, 1.92), women (0.86, 1.67). Unknown sex: mean of both.
BANISTER = {"male": (0.64, 1.92), "female": (0.86, 1.67)}
#: Edwards zone lower edges as fractions of HRmax (zone k in [edge_k, edge_k+1), zone 5 open above)
EDWARDS_ZONE_EDGES = (0.5, 0.6, 0.7, 0.8, 0.9)
#: HR parameter defaults and limits (bpm)
DEFAULT_REST_BPM = 60.0
REST_EST_RANGE_BPM = (40.0, 60.0)
MIN_HR_SECONDS_FOR_ESTIMATE = 600.0


def banister_coefficients(sex: str | None) -> tuple[float, float]:
    """``(a, b)`` of the Banister weighting for ``sex`` (``male``/``m``, ``female``/``f``; else the mean)."""
    s = (sex or "").strip().lower()
    if s.startswith("f") or s == "w":
        return BANISTER["female"]
    if s.startswith("m"):
        return BANISTER["male"]
    (am, bm), (af, bf) = BANISTER["male"], BANISTER["female"]
    return ((am + af) / 2, (bm + bf) / 2)


def record_dt_s(
    timestamps_s: np.ndarray, nominal_s: float = 1.0, max_dt_s: float = MAX_RECORD_DT_S
) -> np.ndarray:
    """Time each record stands for (s): gap to the next record, capped at ``max_dt_s`` (pauses).

    The last record stands for ``nominal_s`` (1 s for 1 Hz watch records). ``timestamps_s`` must be
    sorted ascending.
    """
    t = np.asarray(timestamps_s, dtype=float)
    if t.size == 0:
        return np.zeros(0)
    dt = np.empty_like(t)
    dt[:-1] = np.diff(t)
    dt[-1] = nominal_s
    return np.clip(dt, 0.0, max_dt_s)


def hr_histogram(hr_bpm: np.ndarray, dt_s: np.ndarray) -> np.ndarray:
    """Seconds spent at each integer heart rate: ``h[b] = sum(dt_s[hr == b])`` (NaN/<=0 HR ignored)."""
    hr = np.asarray(hr_bpm, dtype=float)
    dt = np.asarray(dt_s, dtype=float)
    ok = np.isfinite(hr) & (hr > 0) & np.isfinite(dt)
    idx = np.clip(np.rint(hr[ok]).astype(int), 0, HR_BINS - 1)
    return np.bincount(idx, weights=dt[ok], minlength=HR_BINS).astype(float)


def _hrr(hr_bpm: np.ndarray, hr_rest_bpm: float, hr_max_bpm: float) -> np.ndarray:
    return np.clip((np.asarray(hr_bpm, dtype=float) - hr_rest_bpm) / (hr_max_bpm - hr_rest_bpm), 0.0, 1.0)


def banister_trimp(
    hr_bpm: np.ndarray, dt_s: np.ndarray, hr_rest_bpm: float, hr_max_bpm: float, sex: str | None
) -> float:
    """Banister TRIMP (arbitrary units, "minutes at HRr weighted").

    .. math:: TRIMP = \\sum_i \\frac{dt_i}{60} \\cdot HRr_i \\cdot a\\,e^{b\\,HRr_i},\\qquad
              HRr = \\mathrm{clip}\\left(\\frac{HR - HR_{rest}}{HR_{max} - HR_{rest}}, 0, 1\\right)

    with ``(a, b) = (0.64, 1.92)`` for men and ``(0.86, 1.67)`` for women (Banister 1991).
    """
    a, b = banister_coefficients(sex)
    hrr = _hrr(hr_bpm, hr_rest_bpm, hr_max_bpm)
    dt_min = np.asarray(dt_s, dtype=float) / 60.0
    ok = np.isfinite(hrr) & np.isfinite(dt_min)
    return float(np.sum(dt_min[ok] * hrr[ok] * a * np.exp(b * hrr[ok])))


def banister_trimp_from_histogram(
    hr_seconds: np.ndarray, hr_rest_bpm: float, hr_max_bpm: float, sex: str | None
) -> float:
    """:func:`banister_trimp` evaluated on a time-at-HR histogram (exact for integer HR)."""
    bpm = np.arange(len(hr_seconds), dtype=float)
    return banister_trimp(bpm, np.asarray(hr_seconds, dtype=float), hr_rest_bpm, hr_max_bpm, sex)


def edwards_trimp(hr_bpm: np.ndarray, dt_s: np.ndarray, hr_max_bpm: float) -> float:
    """Edwards TRIMP (a.u.): minutes in five %HRmax zones weighted 1..5.

    Zone k (k = 1..5) is ``[50 + 10(k-1), 60 + 10(k-1))`` % of HRmax; >= 90 % (including > 100 %)
    counts as zone 5; below 50 % counts zero. ``TRIMP = sum_k k * minutes_k``.
    """
    frac = np.asarray(hr_bpm, dtype=float) / hr_max_bpm
    dt_min = np.asarray(dt_s, dtype=float) / 60.0
    zone = np.searchsorted(np.asarray(EDWARDS_ZONE_EDGES), frac, side="right")  # 0 below 50 %, 1..5
    ok = np.isfinite(frac) & np.isfinite(dt_min)
    return float(np.sum(zone[ok] * dt_min[ok]))


def edwards_trimp_from_histogram(hr_seconds: np.ndarray, hr_max_bpm: float) -> float:
    """:func:`edwards_trimp` evaluated on a time-at-HR histogram."""
    bpm = np.arange(len(hr_seconds), dtype=float)
    return edwards_trimp(bpm, np.asarray(hr_seconds, dtype=float), hr_max_bpm)


def weighted_percentile_bpm(hr_seconds: np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0..100) of heart rate weighted by time, from a histogram (bpm).

    Returns the smallest bpm ``b`` with cumulative time share >= q/100; NaN for an empty histogram.
    """
    h = np.asarray(hr_seconds, dtype=float)
    total = h.sum()
    if total <= 0:
        return math.nan
    cum = np.cumsum(h) / total
    return float(np.searchsorted(cum, q / 100.0 - 1e-12, side="left"))


def age_from_birth_year_band(band: str | None, year: int) -> float | None:
    """Age (years) in ``year`` from a band like ``"1980-1984"``, ``"1980s"`` or ``"1983"`` (midpoint)."""
    if not band:
        return None
    years = [int(y) for y in re.findall(r"(?:19|20)\d\d", band)]
    if not years:
        return None
    if len(years) == 1 and band.strip().endswith("s"):
        mid = years[0] + 4.5
    else:
        mid = (min(years) + max(years)) / 2
    return float(year - mid)


@dataclass(frozen=True)
class HrParams:
    """Resting and maximal heart rate used for TRIMP and where each came from."""

    rest_bpm: float
    max_bpm: float
    source: str  # profile | estimated | mixed


def hr_params(
    profile_rest_bpm: float | None,
    profile_max_bpm: float | None,
    history_hr_seconds: np.ndarray,
    age_years: float | None,
) -> HrParams | None:
    """Resting/maximal HR for a day: the profile's values, else estimated from data.

    Estimates (bpm), from ``history_hr_seconds`` (time-at-HR over the 90 days up to the day):

    - ``HRmax = max(P99.5(observed HR), 208 - 0.7 * age)`` (Tanaka 2001; age from the birth-year
      band); only the observed term without an age, only the Tanaka term without >= 10 min of HR.
    - ``HRrest = clip(P1(observed HR), 40, 60)``: HR during runs is far above rest, so the observed
      low percentile is capped at a population default of 60 bpm; 60 without data.

    Returns None when HRmax cannot be determined (no profile value, no HR data, no age).
    ``source`` is ``profile`` when both came from the profile, ``estimated`` when neither did,
    else ``mixed``.
    """
    h = np.asarray(history_hr_seconds, dtype=float)
    enough = h.sum() >= MIN_HR_SECONDS_FOR_ESTIMATE
    rest_from_profile = (
        profile_rest_bpm is not None and np.isfinite(profile_rest_bpm) and profile_rest_bpm > 0
    )
    max_from_profile = profile_max_bpm is not None and np.isfinite(profile_max_bpm) and profile_max_bpm > 0
    if max_from_profile:
        hr_max = float(profile_max_bpm)
    else:
        candidates = []
        if enough:
            candidates.append(weighted_percentile_bpm(h, 99.5))
        if age_years is not None:
            candidates.append(208.0 - 0.7 * age_years)
        if not candidates:
            return None
        hr_max = float(max(candidates))
    if rest_from_profile:
        hr_rest = float(profile_rest_bpm)
    elif enough:
        hr_rest = float(np.clip(weighted_percentile_bpm(h, 1.0), *REST_EST_RANGE_BPM))
    else:
        hr_rest = DEFAULT_REST_BPM
    if hr_max <= hr_rest + 20:  # implausible profile/estimate pair: keep a usable reserve
        hr_max = hr_rest + 20
    source = (
        "profile"
        if rest_from_profile and max_from_profile
        else ("estimated" if not (rest_from_profile or max_from_profile) else "mixed")
    )
    return HrParams(hr_rest, hr_max, source)


def impact_load_g(peak_impact_m_s2: np.ndarray) -> float:
    """External (impact) load in g-strides: ``sum_i peak_impact_i / 9.80665`` over strides.

    Peak impact is the per-stride maximum of the foot-IMU acceleration norm after initial contact
    (gravity included, m/s^2); NaNs are skipped.
    """
    x = np.asarray(peak_impact_m_s2, dtype=float)
    return float(np.nansum(x) / G0_M_S2)


def ewma(loads: np.ndarray, n_days: int, initial: float = 0.0) -> np.ndarray:
    """Exponentially weighted moving average of daily loads (Williams et al. 2017).

    .. math:: \\lambda = 2/(N+1),\\qquad EWMA_t = \\lambda\\,load_t + (1-\\lambda)\\,EWMA_{t-1}

    with ``EWMA_{-1} = initial``. ``loads`` must hold one value per calendar day (rest days = 0).
    """
    lam = 2.0 / (n_days + 1.0)
    x = np.asarray(loads, dtype=float)
    out = np.empty_like(x)
    prev = initial
    for i, v in enumerate(x):
        prev = lam * v + (1.0 - lam) * prev
        out[i] = prev
    return out


def ewma_truncated(loads: np.ndarray, n_days: int, horizon_days: int) -> np.ndarray:
    """:func:`ewma` restarted from 0 ``horizon_days`` before each day.

    .. math:: EWMA_t = \\sum_{k=0}^{H-1} \\lambda (1-\\lambda)^k\\, load_{t-k}

    Equal to the recurrence started at ``t - H + 1`` with ``EWMA = 0`` (values before the array
    start count as 0). A fixed horizon makes each day's value depend only on its own window, so a
    rerun of any date range gives the same numbers; for N = 28 and H = 90 the neglected weight is
    ``(1 - 2/29)^90 = 0.16 %``.
    """
    lam = 2.0 / (n_days + 1.0)
    x = np.asarray(loads, dtype=float)
    kernel = lam * (1.0 - lam) ** np.arange(horizon_days)
    return np.convolve(x, kernel, mode="full")[: len(x)]


def acute_chronic(
    daily_load: np.ndarray, acute_days: int = 7, chronic_days: int = 28, horizon_days: int = 90
) -> tuple[np.ndarray, np.ndarray]:
    """Acute (EWMA N=7) and chronic (EWMA N=28) loads of a daily series, see :func:`ewma_truncated`."""
    return (
        ewma_truncated(daily_load, acute_days, horizon_days),
        ewma_truncated(daily_load, chronic_days, horizon_days),
    )


def acwr(acute: np.ndarray, chronic: np.ndarray) -> np.ndarray:
    """Acute:chronic workload ratio ``acute / chronic``; NaN where chronic load is 0.

    Contested (Lolli 2019, Impellizzeri 2021): reported, never used as a verdict.
    """
    a = np.asarray(acute, dtype=float)
    c = np.asarray(chronic, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c > 0, a / c, np.nan)


def monotony_strain(
    daily_load: np.ndarray, window_days: int = 7
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foster (1998) monotony and strain over a trailing window of daily loads.

    .. math:: monotony_t = \\frac{\\mathrm{mean}(load_{t-6..t})}{\\mathrm{sd}(load_{t-6..t})},\\qquad
              strain_t = \\Big(\\sum load_{t-6..t}\\Big) \\cdot monotony_t

    sd is the sample standard deviation (ddof = 1). Days before the array start count as 0 (rest).
    Monotony and strain are NaN when sd = 0 (a week of identical loads, e.g. all rest).

    Returns ``(weekly_load, monotony, strain)``.
    """
    x = np.asarray(daily_load, dtype=float)
    padded = np.concatenate([np.zeros(window_days - 1), x])
    win = np.lib.stride_tricks.sliding_window_view(padded, window_days)
    weekly = win.sum(axis=1)
    mean = win.mean(axis=1)
    sd = win.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mono = np.where(sd > 1e-12, mean / sd, np.nan)
    return weekly, mono, weekly * mono


def session_spike(
    longest_run_m: np.ndarray, window_days: int = 30, threshold: float = 1.10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Single-session distance spike (Frandsen et al., BJSM 2025).

    For day t with a run: ``ratio_t = longest_t / max(longest_{t-30..t-1})``; flag = ratio > 1.10.

    ``longest_run_m`` holds the day's longest single run (m), 0 or NaN on rest days. Returns
    ``(previous_30d_longest_m, ratio, flag)`` where ratio is NaN on rest days and when there was
    no run in the previous 30 days; the flag is 0 on rest days and NaN when the ratio is undefined
    on a run day (a float array holding 0/1/NaN).
    """
    x = np.nan_to_num(np.asarray(longest_run_m, dtype=float), nan=0.0)
    padded = np.concatenate([np.zeros(window_days), x])
    win = np.lib.stride_tricks.sliding_window_view(padded[:-1], window_days)
    prev = win.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((x > 0) & (prev > 0), x / prev, np.nan)
    flag = np.where(x > 0, np.where(np.isfinite(ratio), (ratio > threshold).astype(float), np.nan), 0.0)
    return prev, ratio, flag


# --- the same quantities for many days at once (rows of a day x HR_BINS histogram matrix) ---


def weighted_percentile_bpm_rows(hr_seconds: np.ndarray, q: float) -> np.ndarray:
    """:func:`weighted_percentile_bpm` of each row of a ``(days, bins)`` histogram matrix (bpm).

    Row-wise cumulative time share ``c``; the percentile is the number of bins with
    ``c < q/100 - 1e-12`` (= ``searchsorted(c, ., "left")`` as ``c`` is non-decreasing); NaN for empty rows.
    """
    h = np.asarray(hr_seconds, dtype=float)
    total = h.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cum = np.cumsum(h, axis=1) / total[:, None]
    out = (cum < q / 100.0 - 1e-12).sum(axis=1).astype(float)
    return np.where(total > 0, out, np.nan)


def hr_params_rows(
    profile_rest_bpm: float | None,
    profile_max_bpm: float | None,
    history_hr_seconds: np.ndarray,
    age_years: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
    """:func:`hr_params` for many days: one history histogram row (and age) per day.

    Returns ``(rest_bpm, max_bpm, source, known)``; ``known`` is False where :func:`hr_params`
    returns None (rest/max are NaN there). ``source`` does not depend on the day.
    """
    h = np.asarray(history_hr_seconds, dtype=float)
    k = len(h)
    enough = h.sum(axis=1) >= MIN_HR_SECONDS_FOR_ESTIMATE
    rest_from_profile = (
        profile_rest_bpm is not None and np.isfinite(profile_rest_bpm) and profile_rest_bpm > 0
    )
    max_from_profile = profile_max_bpm is not None and np.isfinite(profile_max_bpm) and profile_max_bpm > 0
    known = np.ones(k, dtype=bool)
    if max_from_profile:
        hr_max = np.full(k, float(profile_max_bpm))
    else:
        observed = np.where(enough, weighted_percentile_bpm_rows(h, 99.5), np.nan)
        if age_years is None:
            hr_max = observed
        else:
            tanaka = 208.0 - 0.7 * np.asarray(age_years, dtype=float)
            hr_max = np.where(enough, np.maximum(observed, tanaka), tanaka)
        known = np.isfinite(hr_max)
    if rest_from_profile:
        hr_rest = np.full(k, float(profile_rest_bpm))
    else:
        p1 = np.clip(weighted_percentile_bpm_rows(h, 1.0), *REST_EST_RANGE_BPM)
        hr_rest = np.where(enough, p1, DEFAULT_REST_BPM)
    hr_max = np.where(hr_max <= hr_rest + 20, hr_rest + 20, hr_max)
    source = (
        "profile"
        if rest_from_profile and max_from_profile
        else ("estimated" if not (rest_from_profile or max_from_profile) else "mixed")
    )
    return np.where(known, hr_rest, np.nan), np.where(known, hr_max, np.nan), source, known


def banister_trimp_rows(
    hr_seconds: np.ndarray, hr_rest_bpm: np.ndarray, hr_max_bpm: np.ndarray, sex: str | None
) -> np.ndarray:
    """:func:`banister_trimp_from_histogram` of each row of a ``(days, bins)`` matrix, per-row HR params."""
    a, b = banister_coefficients(sex)
    h = np.asarray(hr_seconds, dtype=float)
    rest = np.asarray(hr_rest_bpm, dtype=float)[:, None]
    reserve = (np.asarray(hr_max_bpm, dtype=float) - np.asarray(hr_rest_bpm, dtype=float))[:, None]
    bpm = np.arange(h.shape[1], dtype=float)[None, :]
    hrr = np.clip((bpm - rest) / reserve, 0.0, 1.0)
    return (h / 60.0 * hrr * a * np.exp(b * hrr)).sum(axis=1)


def edwards_trimp_rows(hr_seconds: np.ndarray, hr_max_bpm: np.ndarray) -> np.ndarray:
    """:func:`edwards_trimp_from_histogram` of each row of a ``(days, bins)`` matrix, per-row HRmax."""
    h = np.asarray(hr_seconds, dtype=float)
    bpm = np.arange(h.shape[1], dtype=float)[None, :]
    frac = bpm / np.asarray(hr_max_bpm, dtype=float)[:, None]
    zone = np.searchsorted(np.asarray(EDWARDS_ZONE_EDGES), frac, side="right")
    return (zone * (h / 60.0)).sum(axis=1)
