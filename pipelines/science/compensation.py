"""Compensation score (0-100) and its eight explainable components.

Plain numpy/pandas, no Beam. Three steps:

1. :func:`session_stride_stats` / :func:`session_watch_stats`: robust per-session statistics
   (medians over quality-checked strides, left/right medians, early/late thirds of long runs).
2. :func:`day_components`: one row per day with each component's **raw value** (higher = more
   compensation), the sensors that covered it, and sub-measures, from the day's sessions
   (count-weighted mean of session medians).
3. :func:`score_components`: for a runner's calendar-complete daily frame, each component's
   population z-score, z-score and % change vs the runner's own previous 28 days, its points
   (0-100) and the evidence-weighted total re-weighted over the computable components.

A component that cannot be computed (sensor absent, no long run, ...) is NULL with
``<component>_computable = False``, never 0. The formulas, reference constants and evidence
grades are in ``docs/compensation.md`` and in :data:`COMPONENTS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "BASELINE_DAYS",
    "BASELINE_MIN_DAYS",
    "CALF_SHARE_REF",
    "COMPONENTS",
    "COMPONENT_NAMES",
    "EVIDENCE_WEIGHT",
    "GLUTE_SHARE_REF",
    "HAMSTRING_SHARE_REF",
    "LONG_RUN_MIN_S",
    "SHARE_POP_SD",
    "Component",
    "day_components",
    "linear_points",
    "score_components",
    "session_stride_stats",
    "session_watch_stats",
    "symmetry_index_pct",
]

#: a session at least this long (s) counts as a long run for the fatigue-drift component
LONG_RUN_MIN_S = 40 * 60
#: personal baseline: previous 28 calendar days (today excluded), at least 5 days with a value
BASELINE_DAYS = 28
BASELINE_MIN_DAYS = 5
#: weight of a component in the total, by evidence grade (BRIEF section 2)
EVIDENCE_WEIGHT = {"strong": 1.0, "moderate": 1.0, "weak": 0.7, "contested": 0.4}

#: Population reference shares of posterior-chain activation (gluteus maximus G, hamstrings H,
#: gastrocnemius C; each muscle's per-stride mean envelope / (G + H + C), raw uV of the same shorts).
#: ENGINEERING DEFAULTS, not literature norms: no published running norm exists for these ratios of
#: un-normalised (non-MVC) envelopes, which also depend on the shorts' electrodes and amplifiers. The
#: values are round numbers near the median shares the project's simulator gives runners without
#: compensation traits (glute ~0.41, hamstrings ~0.28, calf ~0.30; tests/test_daily_end_to_end.py) and
#: sum to 1. Recalibrate them on cohort
#: data (e.g. the median shares of injury-free runners of one device generation) before reading the
#: population points as more than orientation; the personal 28-day baseline does not depend on them.
GLUTE_SHARE_REF = 0.41
HAMSTRING_SHARE_REF = 0.29
CALF_SHARE_REF = 0.30
#: population spread of a share (engineering default, same caveat)
SHARE_POP_SD = 0.05


@dataclass(frozen=True)
class Component:
    """One compensation component.

    ``raw`` is oriented so that higher = more compensation. Points from the population reference
    are ``linear_points(raw, good, bad)``; the population z-score is ``(raw - pop_mean) / pop_sd``.
    """

    name: str
    raw_unit: str
    definition: str
    sensors: str
    evidence: str
    pop_mean: float
    pop_sd: float
    good: float  # raw at or below this: 0 points
    bad: float  # raw at or above this: 100 points
    baseline_only: bool = False  # points from the personal trend only (when a baseline exists)

    @property
    def weight(self) -> float:
        return EVIDENCE_WEIGHT[self.evidence]


COMPONENTS: tuple[Component, ...] = (
    Component(
        "glute_deficit",
        "share",
        "reference glute share - median glute_share, glute_share = G / (G + H + C) of raw envelopes",
        "emg",
        "weak",
        0.0,
        SHARE_POP_SD,
        0.03,
        0.15,
    ),
    Component(
        "calf_dominance",
        "share",
        "median calf_share - reference, calf_share = C / (G + H + C) of raw envelopes",
        "emg",
        "weak",
        0.0,
        SHARE_POP_SD,
        0.03,
        0.15,
    ),
    Component(
        "hamstring_dominance",
        "share",
        "median hamstring_share - reference, hamstring_share = H / (G + H + C) of raw envelopes",
        "emg",
        "weak",
        0.0,
        SHARE_POP_SD,
        0.03,
        0.15,
    ),
    Component(
        "recruitment_inversion",
        "fraction of strides",
        "share of EMG strides where hamstrings fire before gluteus maximus",
        "emg",
        "contested",
        0.3,
        0.2,
        0.5,
        0.9,
        baseline_only=True,
    ),
    Component(
        "pelvic_drop",
        "deg",
        "median contralateral pelvic drop in stance",
        "pelvis_imu",
        "moderate",
        5.0,
        2.0,
        6.0,
        10.0,
    ),
    Component(
        "asymmetry",
        "%",
        "ground-contact-time symmetry index |L-R| / mean(L,R) * 100 (strides, or 4*|balance-50| from the watch)",
        "foot_imu|watch",
        "weak",
        2.0,
        1.5,
        3.0,
        10.0,
    ),
    Component(
        "overstride",
        "deg",
        "median foot-strike angle (+ = heel strike); low cadence adds points",
        "foot_imu",
        "moderate",
        10.0,
        6.0,
        12.0,
        25.0,
    ),
    Component(
        "fatigue_drift",
        "%",
        "ground contact time, last vs first third of long runs (>= 40 min), % change",
        "foot_imu|watch",
        "weak",
        2.0,
        3.0,
        3.0,
        12.0,
    ),
)
COMPONENT_NAMES: tuple[str, ...] = tuple(c.name for c in COMPONENTS)

#: secondary measures that can raise a component's points (max of sub-points): (good, bad)
GLUTE_ASYMMETRY_POINTS = (15.0, 40.0)  # glute activation symmetry index, %
CADENCE_POINTS = (170.0, 150.0)  # steps/min: 0 points at >= 170, 100 at <= 150
GLUTE_FATIGUE_DROP_POINTS = (5.0, 30.0)  # % drop of glute activation, last vs first third


def linear_points(raw: np.ndarray | float, good: float, bad: float) -> np.ndarray:
    """``clip((raw - good) / (bad - good), 0, 1) * 100``; NaN stays NaN (``bad < good`` is allowed)."""
    x = np.asarray(raw, dtype=float)
    return np.clip((x - good) / (bad - good), 0.0, 1.0) * 100.0


def symmetry_index_pct(left: float, right: float) -> float:
    """Symmetry index ``|L - R| / ((L + R) / 2) * 100`` (%), NaN when either side is missing."""
    if not (np.isfinite(left) and np.isfinite(right)) or left + right <= 0:
        return math.nan
    return abs(left - right) / ((left + right) / 2.0) * 100.0


def _median(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.median()) if len(x) else math.nan


def _thirds(elapsed_s: pd.Series, values: pd.Series, duration_s: float) -> tuple[float, float]:
    """Medians of ``values`` in the first and last third of the session (by elapsed time)."""
    ok = elapsed_s.notna() & values.notna()
    if not ok.any() or not np.isfinite(duration_s) or duration_s <= 0:
        return math.nan, math.nan
    e, v = elapsed_s[ok], values[ok]
    early = v[e < duration_s / 3.0]
    late = v[e >= 2.0 * duration_s / 3.0]
    if len(early) < 10 or len(late) < 10:
        return math.nan, math.nan
    return float(early.median()), float(late.median())


STRIDE_STAT_KEYS = (
    "n_ok",
    "glute_share",
    "n_glute_share",
    "calf_share",
    "n_calf_share",
    "ham_share",
    "n_ham_share",
    "n_inv_obs",
    "n_inverted",
    "pelvic_drop_deg",
    "n_pelvis",
    "fsa_deg",
    "n_fsa",
    "cadence_spm",
    "n_cadence",
    "gct_left_ms",
    "gct_right_ms",
    "n_gct_lr",
    "glute_left",
    "glute_right",
    "n_glute_lr",
    "gct_early_ms",
    "gct_late_ms",
    "glute_early",
    "glute_late",
)
WATCH_STAT_KEYS = (
    "gct_balance_left_pct",
    "n_balance",
    "watch_cadence_spm",
    "n_watch_cadence",
    "watch_gct_early_ms",
    "watch_gct_late_ms",
)


def session_stride_stats(strides: pd.DataFrame, duration_s: float) -> dict[str, float]:
    """Per-session statistics over quality-checked strides (``quality_ok``) of one session.

    Activation columns (``*_act_norm``) are EMG envelopes normalised to the session's own reference
    (1.0), used for within-runner measures (glute L/R, glute drop late in long runs); glute activation
    per stride is the mean of the available glute max/med values. The shares (``glute_share``,
    ``calf_share``, ``hamstring_share``: raw-envelope ratios of the same shorts) carry the between-runner
    information; strides written before they existed give NaN shares. Early/late thirds are
    computed only for long runs (``duration_s >= LONG_RUN_MIN_S``) with >= 10 strides in each third.
    """
    out: dict[str, float] = dict.fromkeys(STRIDE_STAT_KEYS, math.nan)
    if strides is None or strides.empty:
        return out
    s = strides[strides["quality_ok"].fillna(False).astype(bool)]
    out["n_ok"] = float(len(s))
    if s.empty:
        return out
    glute = s[["glute_max_act_norm", "glute_med_act_norm"]].mean(axis=1, skipna=True)
    # shares of posterior-chain activation (raw uV ratios of the same shorts): comparable between runners
    for key, col in (
        ("glute_share", "glute_share"),
        ("calf_share", "calf_share"),
        ("ham_share", "hamstring_share"),
    ):
        x = s[col] if col in s else pd.Series(np.nan, index=s.index)  # absent in strides before v2
        out[key], out[f"n_{key}"] = _median(x), float(x.notna().sum())
    inv = s["recruitment_inverted"].dropna()
    out["n_inv_obs"], out["n_inverted"] = float(len(inv)), float(inv.astype(bool).sum())
    out["pelvic_drop_deg"], out["n_pelvis"] = (
        _median(s["pelvic_drop_deg"]),
        float(s["pelvic_drop_deg"].notna().sum()),
    )
    out["fsa_deg"], out["n_fsa"] = (
        _median(s["foot_strike_angle_deg"]),
        float(s["foot_strike_angle_deg"].notna().sum()),
    )
    out["cadence_spm"], out["n_cadence"] = _median(s["cadence_spm"]), float(s["cadence_spm"].notna().sum())
    left, right = s[s["foot"] == "left"], s[s["foot"] == "right"]
    out["gct_left_ms"], out["gct_right_ms"] = (
        _median(left["ground_contact_time_ms"]),
        _median(right["ground_contact_time_ms"]),
    )
    out["n_gct_lr"] = float(
        min(left["ground_contact_time_ms"].notna().sum(), right["ground_contact_time_ms"].notna().sum())
    )
    gl, gr = glute[s["foot"] == "left"], glute[s["foot"] == "right"]
    out["glute_left"], out["glute_right"] = _median(gl), _median(gr)
    out["n_glute_lr"] = float(min(gl.notna().sum(), gr.notna().sum()))
    if np.isfinite(duration_s) and duration_s >= LONG_RUN_MIN_S and "session_elapsed_s" in s:
        out["gct_early_ms"], out["gct_late_ms"] = _thirds(
            s["session_elapsed_s"], s["ground_contact_time_ms"], duration_s
        )
        out["glute_early"], out["glute_late"] = _thirds(s["session_elapsed_s"], glute, duration_s)
    return out


def session_watch_stats(records: pd.DataFrame, start_s: float, duration_s: float) -> dict[str, float]:
    """Per-session statistics from 1 Hz watch records (running dynamics of FIT-only runners).

    ``start_s`` is the session start (epoch s); records need ``timestamp_s``. GCT balance is the
    left foot's share of ground contact time (%), 50 = symmetric; cadence is steps/min (> 0 only).
    """
    out: dict[str, float] = dict.fromkeys(WATCH_STAT_KEYS, math.nan)
    if records is None or records.empty:
        return out
    bal = records["ground_contact_balance_left_pct"]
    bal = bal[(bal > 0) & (bal < 100)]
    out["gct_balance_left_pct"], out["n_balance"] = _median(bal), float(bal.notna().sum())
    cad = records["cadence_spm"]
    cad = cad[cad > 0]
    out["watch_cadence_spm"], out["n_watch_cadence"] = _median(cad), float(cad.notna().sum())
    if np.isfinite(duration_s) and duration_s >= LONG_RUN_MIN_S:
        gct = records["ground_contact_time_ms"].where(records["ground_contact_time_ms"] > 0)
        out["watch_gct_early_ms"], out["watch_gct_late_ms"] = _thirds(
            records["timestamp_s"] - start_s, gct, duration_s
        )
    return out


#: groups with at least this many summed elements are re-summed with ``np.sum`` (see :func:`_group_sum`)
_SEQUENTIAL_SUM_MAX = 7


def _group_sum(x: np.ndarray, gid: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group sums and counts of ``x`` (group ``gid[i]`` in ``0..n-1``), summed in row order.

    ``np.bincount`` adds each group's values sequentially, which is bit-identical to ``np.sum`` of
    the group's values for up to 7 values (numpy sums larger arrays pairwise); larger groups are
    rare (8+ sessions a day) and re-summed with ``np.sum`` so results never depend on the path.
    """
    total = np.bincount(gid, weights=x, minlength=n)
    count = np.bincount(gid, minlength=n)
    for k in np.flatnonzero(count > _SEQUENTIAL_SUM_MAX):
        total[k] = x[gid == k].sum()
    return total, count


def _group_wmean(values: np.ndarray, weights: np.ndarray, gid: np.ndarray, n: int) -> np.ndarray:
    """Per-group weighted mean ``sum(v * w) / sum(w)`` over rows with v, w not NaN and w > 0.

    Same value as ``np.average(v[ok], weights=w[ok])`` for each group; NaN where no row qualifies.
    """
    with np.errstate(invalid="ignore"):
        ok = ~np.isnan(values) & ~np.isnan(weights) & (weights > 0)
    v, w, g = values[ok], weights[ok], gid[ok]
    num, count = _group_sum(np.multiply(v, w), g, n)
    den, _ = _group_sum(w, g, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, num / np.where(count > 0, den, 1.0), np.nan)


def _symmetry_index_pct(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Element-wise :func:`symmetry_index_pct`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = np.isfinite(left) & np.isfinite(right) & ~(left + right <= 0)
        return np.where(ok, np.abs(left - right) / ((left + right) / 2.0) * 100.0, np.nan)


def _label(finite: np.ndarray, name: str) -> np.ndarray:
    """Object array: ``name`` where ``finite``, else None."""
    out = np.full(len(finite), None, dtype=object)
    out[finite] = name
    return out


def _join_labels(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Object array ``"a,b"`` / ``"a"`` / ``"b"`` / None from two label arrays (``""`` = absent)."""
    out = np.full(len(first), None, dtype=object)
    for a in np.unique(first):
        for b in np.unique(second):
            label = ",".join(str(x) for x in (a, b) if x)
            if label:
                out[(first == a) & (second == b)] = label
    return out


class _Columns(dict):
    """``sessions`` columns as float arrays (NaN for missing values), converted on first use."""

    def __init__(self, sessions: pd.DataFrame) -> None:
        super().__init__()
        self.sessions = sessions

    def __missing__(self, name: str) -> np.ndarray:
        self[name] = col = self.sessions[name].to_numpy(dtype=float, na_value=np.nan)
        return col


def day_component_arrays(sessions: pd.DataFrame, gid: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Raw component columns (see :func:`day_components`) for ``n`` days, vectorised over sessions.

    ``gid[i]`` is the day index (``0..n-1``) of session row ``i``; rows of a day are combined in
    row order. Days without sessions get NaN / None. All days are computed at once with grouped
    sums (``np.bincount`` over day indices): ``wmean_d(v, w) = sum_{i in d, ok} v_i w_i / sum w_i``.
    """
    gid = np.asarray(gid, dtype=np.intp)
    c = _Columns(sessions)
    r: dict[str, np.ndarray] = {}

    def wm(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return _group_wmean(values, weights, gid, n)

    # EMG: glute deficit, calf and hamstring dominance (shares vs the population reference), inversion
    glute = wm(c["glute_share"], c["n_glute_share"])
    r["glute_deficit_raw"] = np.where(np.isfinite(glute), GLUTE_SHARE_REF - glute, np.nan)
    r["glute_deficit_sensors"] = _label(np.isfinite(glute), "emg")
    calf = wm(c["calf_share"], c["n_calf_share"])
    r["calf_dominance_raw"] = np.where(np.isfinite(calf), calf - CALF_SHARE_REF, np.nan)
    r["calf_dominance_sensors"] = _label(np.isfinite(calf), "emg")
    ham = wm(c["ham_share"], c["n_ham_share"])
    r["hamstring_dominance_raw"] = np.where(np.isfinite(ham), ham - HAMSTRING_SHARE_REF, np.nan)
    r["hamstring_dominance_sensors"] = _label(np.isfinite(ham), "emg")
    # share = sum(n_inverted) / sum(n_inv_obs) (NaN counts as 0; NaN when no day session observed it)
    obs = c["n_inv_obs"]
    n_obs, _ = _group_sum(np.where(np.isnan(obs), 0.0, obs), gid, n)
    obs_seen, _ = _group_sum((~np.isnan(obs)).astype(float), gid, n)
    n_inv, _ = _group_sum(np.where(np.isnan(c["n_inverted"]), 0.0, c["n_inverted"]), gid, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where((obs_seen > 0) & (n_obs > 0), n_inv / np.where(n_obs > 0, n_obs, 1.0), np.nan)
    r["recruitment_inversion_raw"] = inv
    r["recruitment_inversion_sensors"] = _label(np.isfinite(inv), "emg")
    r["glute_share_median"] = glute
    # pelvis IMU
    pd_deg = wm(c["pelvic_drop_deg"], c["n_pelvis"])
    r["pelvic_drop_raw"] = pd_deg
    r["pelvic_drop_sensors"] = _label(np.isfinite(pd_deg), "pelvis_imu")
    # asymmetry: strides L/R GCT, else watch GCT balance; glute L/R as a secondary measure
    si_strides = wm(_symmetry_index_pct(c["gct_left_ms"], c["gct_right_ms"]), c["n_gct_lr"])
    si_watch = wm(4.0 * np.abs(c["gct_balance_left_pct"] - 50.0), c["n_balance"])
    from_strides = np.isfinite(si_strides)
    si = np.where(from_strides, si_strides, si_watch)
    glute_si = wm(_symmetry_index_pct(c["glute_left"], c["glute_right"]), c["n_glute_lr"])
    r["asymmetry_raw"] = si
    r["asymmetry_gct_si_pct"] = si
    r["asymmetry_glute_si_pct"] = glute_si
    si_name = np.where(np.isfinite(si), np.where(from_strides, "foot_imu", "watch"), "")
    r["asymmetry_sensors"] = _join_labels(si_name, np.where(np.isfinite(glute_si), "emg", ""))
    # overstride: foot-strike angle; cadence (strides, else watch) as a secondary measure
    fsa = wm(c["fsa_deg"], c["n_fsa"])
    cad = wm(c["cadence_spm"], c["n_cadence"])
    cad = np.where(np.isfinite(cad), cad, wm(c["watch_cadence_spm"], c["n_watch_cadence"]))
    r["overstride_raw"] = fsa
    r["cadence_spm"] = cad
    r["overstride_sensors"] = _label(np.isfinite(fsa), "foot_imu")
    # fatigue drift: GCT last vs first third of long runs (strides, else watch); glute drop secondary
    stride_thirds = ~np.isnan(c["gct_early_ms"])
    gct_e = np.where(stride_thirds, c["gct_early_ms"], c["watch_gct_early_ms"])
    gct_l = np.where(stride_thirds, c["gct_late_ms"], c["watch_gct_late_ms"])
    with np.errstate(divide="ignore", invalid="ignore"):
        drift = (gct_l - gct_e) / gct_e * 100.0
        glute_drop = (c["glute_early"] - c["glute_late"]) / c["glute_early"] * 100.0
    r["fatigue_drift_raw"] = wm(drift, c["duration_s"])
    r["fatigue_glute_drop_pct"] = wm(glute_drop, c["duration_s"])
    any_stride_thirds = np.bincount(gid, weights=stride_thirds, minlength=n) > 0
    fd_name = np.where(
        np.isfinite(r["fatigue_drift_raw"]), np.where(any_stride_thirds, "foot_imu", "watch"), ""
    )
    r["fatigue_drift_sensors"] = _join_labels(
        fd_name, np.where(np.isfinite(r["fatigue_glute_drop_pct"]), "emg", "")
    )
    return r


def day_components(sessions: pd.DataFrame) -> pd.DataFrame:
    """Raw component values per day from per-session statistics.

    Parameters
    ----------
    sessions
        One row per session with a ``day`` column, ``duration_s``, and the keys of
        :func:`session_stride_stats` and :func:`session_watch_stats` (NaN where absent).

    Returns
    -------
    DataFrame indexed by ``day`` (sorted) with ``<component>_raw`` and ``<component>_sensors`` for
    every component plus ``glute_share_median``, ``cadence_spm``, ``asymmetry_gct_si_pct``,
    ``asymmetry_glute_si_pct`` and ``fatigue_glute_drop_pct``. Day values are count-weighted means
    of session medians (duration-weighted for fatigue drift), see :func:`day_component_arrays`.
    """
    if sessions.empty:
        return pd.DataFrame()
    codes, days = pd.factorize(sessions["day"], sort=True)
    keep = codes >= 0
    s = sessions[keep] if not keep.all() else sessions
    cols = day_component_arrays(s, codes[keep], len(days))
    return pd.DataFrame(cols, index=pd.Index(list(days), dtype=object))


def score_components(daily: pd.DataFrame) -> pd.DataFrame:
    """Points, baselines and the total score for one runner's calendar-complete daily frame.

    ``daily`` has one row per calendar day in order (rest days included) with the columns of
    :func:`day_components` (NaN/None where not computable). Adds, for each component ``c``:

    - ``c_computable``: raw value present;
    - ``c_pop_z = (raw - pop_mean) / pop_sd``;
    - ``c_baseline_z = (raw - mean_28) / max(sd_28, 0.25 * pop_sd)`` and
      ``c_vs_baseline_pct = (raw - mean_28) / |mean_28| * 100`` over the runner's previous 28
      calendar days (today excluded, >= 5 days with a value, else NaN);
    - ``c_points`` (0-100) = ``max(population points, baseline points)`` where population points =
      ``linear_points(raw, good, bad)`` (plus secondary measures, see docs) and baseline points =
      ``clip((baseline_z - 1) / 2, 0, 1) * 100``; recruitment inversion uses baseline points only
      once a baseline exists (a per-runner trend signal).

    and ``compensation_score = sum(w_c * points_c) / sum(w_c)`` over computable components
    (``w`` from the evidence grade), ``compensation_components_available`` and
    ``compensation_sensors``. Days without any computable component get a NULL score.
    """
    # new/replaced columns collected in a dict and framed once (inserting ~45 columns one by one
    # into a DataFrame costs more than computing them)
    out = {col: daily[col] for col in daily.columns}
    n = len(daily)
    num = np.zeros(n)
    den = np.zeros(n)
    available = np.zeros(n, dtype=np.int32)
    for comp in COMPONENTS:
        c = comp.name
        raw = daily[f"{c}_raw"].astype(float).to_numpy()
        ok = np.isfinite(raw)
        prev = pd.Series(raw).shift(1).rolling(BASELINE_DAYS, min_periods=BASELINE_MIN_DAYS)
        base_mean = prev.mean().to_numpy()
        base_sd = np.maximum(np.nan_to_num(prev.std(ddof=1).to_numpy(), nan=0.0), 0.25 * comp.pop_sd)
        with np.errstate(divide="ignore", invalid="ignore"):
            bz = np.where(ok & np.isfinite(base_mean), (raw - base_mean) / base_sd, np.nan)
            pct = np.where(
                ok & np.isfinite(base_mean) & (np.abs(base_mean) > 1e-9),
                (raw - base_mean) / np.abs(base_mean) * 100.0,
                np.nan,
            )
        pop_pts = linear_points(raw, comp.good, comp.bad)
        if c == "asymmetry":
            pop_pts = np.fmax(
                pop_pts, linear_points(daily["asymmetry_glute_si_pct"].astype(float), *GLUTE_ASYMMETRY_POINTS)
            )
        elif c == "overstride":
            pop_pts = np.where(
                ok,
                np.fmax(pop_pts, linear_points(daily["cadence_spm"].astype(float), *CADENCE_POINTS)),
                np.nan,
            )
        elif c == "fatigue_drift":
            pop_pts = np.fmax(
                pop_pts,
                linear_points(daily["fatigue_glute_drop_pct"].astype(float), *GLUTE_FATIGUE_DROP_POINTS),
            )
        base_pts = linear_points(bz, 1.0, 3.0)
        if comp.baseline_only:
            pts = np.where(np.isfinite(base_pts), base_pts, pop_pts)
        else:
            pts = np.fmax(pop_pts, base_pts)
        pts = np.where(ok, pts, np.nan)
        out[f"{c}_computable"] = ok
        out[f"{c}_points"] = pts
        out[f"{c}_pop_z"] = np.where(ok, (raw - comp.pop_mean) / comp.pop_sd, np.nan)
        out[f"{c}_baseline_z"] = bz
        out[f"{c}_vs_baseline_pct"] = pct
        out[f"{c}_sensors"] = daily[f"{c}_sensors"].where(ok, None)
        num += np.where(ok, comp.weight * np.nan_to_num(pts), 0.0)
        den += np.where(ok, comp.weight, 0.0)
        available += ok.astype(np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["compensation_score"] = np.where(den > 0, num / den, np.nan)
    out["compensation_components_available"] = available
    out["compensation_sensors"] = _union_labels([out[f"{comp.name}_sensors"].tolist() for comp in COMPONENTS])
    return pd.DataFrame(out, index=daily.index)


def _union_labels(columns: list[list[object]]) -> list[str | None]:
    """Per row, the sorted union of the comma-separated labels in ``columns`` (None when empty)."""
    cache: dict[tuple, str | None] = {}
    out = []
    for row in zip(*columns, strict=True):
        key = tuple(v if isinstance(v, str) else None for v in row)
        if key not in cache:
            s: set[str] = set()
            for v in key:
                if v:
                    s.update(v.split(","))
            cache[key] = ",".join(sorted(s)) or None
        out.append(cache[key])
    return out
