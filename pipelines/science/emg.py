"""Per-stride EMG features from device-computed linear envelopes (plain numpy, no Beam).

Input: envelopes in uV per muscle of one side (gluteus maximus, gluteus medius, hamstrings,
gastrocnemius, vastus lateralis), sampled at ``fs`` Hz (100 Hz from the shorts), and the foot's strides
``[IC_k, IC_{k+1})`` on the same clock. The stride of the **left** foot uses the **left** muscles.

Features per stride
-------------------
* ``<muscle>_mean_uV = mean(env)`` over ``[IC_k, IC_{k+1})``.
* ``<muscle>_act_norm = <muscle>_mean_uV / ref`` where ``ref`` is the runner's own reference for this
  muscle and side (:class:`EmgReference`): the **median of the per-stride means of the first
  ``N = 20`` strides of the session**; while fewer than ``N`` strides have been seen the median of those
  seen so far (including the current one) is used. Per session because electrode placement and skin
  impedance change between sessions, so raw uV are not comparable across sessions; the reference is
  small carried state (at most N numbers per muscle), so streaming and offline give the same values.
* ``glute_share = G / (G + H + C)``, ``hamstring_share = H / (G + H + C)`` and
  ``calf_share = C / (G + H + C)`` with the **raw** mean envelopes (uV, same window and side) of gluteus
  maximus ``G``, hamstrings ``H`` and gastrocnemius ``C`` (each 0..1, summing to 1): the shares of
  posterior-chain activation. Unlike ``*_act_norm`` (1.0 for every runner by construction) they compare
  runners: electrode placement and skin scale the channels of one pair of shorts alike far more than
  they change their ratio.
* ``glute_onset_ms`` / ``hamstring_onset_ms``: activation onset relative to IC (negative = before IC).
  Threshold ``θ = lo + 0.3 (hi - lo)`` with ``lo``/``hi`` the 5th/95th percentile of the envelope over
  the stride window; the onset is the **first upward crossing** of ``θ`` in
  ``[IC - 0.25 T, IC + 0.25 T]`` (``T`` = stride time), linearly interpolated between samples.
* ``recruitment_inverted = hamstring_onset_ms < glute_onset_ms`` (hamstrings fire first); NaN onsets
  give ``None``. A per-runner trend signal, not an absolute rule (some healthy runners fire hamstrings
  first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "MUSCLE_COLUMNS",
    "EmgReference",
    "activation_onset_ms",
    "glute_share",
    "posterior_chain_shares",
    "stride_emg_means",
]

#: muscle name in the EMG channels -> prefix of the strides table columns
MUSCLE_COLUMNS: dict[str, str] = {
    "gluteus_maximus": "glute_max",
    "gluteus_medius": "glute_med",
    "hamstrings": "hamstrings",
    "gastrocnemius": "gastrocnemius",
    "vastus_lateralis": "vastus_lateralis",
}
REFERENCE_STRIDES = 20
ONSET_THRESHOLD_FRACTION = 0.3
ONSET_WINDOW_FRACTION = 0.25


def _covered(t: np.ndarray, a: int, b: int, start: float, stop: float, max_gap: float) -> bool:
    if b - a < 2:
        return False
    seg = t[a:b]
    return seg[0] - start <= max_gap and stop - seg[-1] <= max_gap and not (np.diff(seg) > max_gap).any()


def _rows(lo: np.ndarray, hi: np.ndarray, n_t: int) -> tuple[np.ndarray, np.ndarray]:
    """Index matrix ``(k, L)`` of samples ``[lo[k], hi[k])`` (clipped to the data) and its mask."""
    lens = hi - lo
    col = np.arange(int(lens.max()) if len(lens) else 0)
    return np.minimum(lo[:, None] + col, n_t - 1), col < lens[:, None]


def stride_emg_means(
    t_s: np.ndarray,
    env_uV: np.ndarray,
    ic_s: np.ndarray,
    ic_next_s: np.ndarray,
    max_gap_s: float | None = None,
) -> np.ndarray:
    """Mean envelope (uV) per stride ``[ic_s[k], ic_next_s[k])``; NaN when not covered without gaps.

    ``max_gap_s`` defaults to 1.5 sample periods.
    """
    t = np.asarray(t_s, dtype=float)
    env = np.asarray(env_uV, dtype=float)
    out = np.full(len(ic_s), np.nan)
    if len(t) < 2:
        return out
    max_gap = max_gap_s if max_gap_s is not None else 1.5 * float(np.median(np.diff(t)))
    lo = np.searchsorted(t, ic_s, side="left")
    hi = np.searchsorted(t, ic_next_s, side="left")
    # vectorised _covered(): >= 2 samples, both ends within max_gap, no inner gap > max_gap
    gaps = np.concatenate([[0], np.cumsum(np.diff(t) > max_gap)])  # gaps[i] = big gaps before sample i
    n_t = len(t)
    ok = hi - lo >= 2
    first = t[np.minimum(lo, n_t - 1)]
    last = t[np.clip(hi - 1, 0, n_t - 1)]
    ok &= (first - np.asarray(ic_s, float) <= max_gap) & (np.asarray(ic_next_s, float) - last <= max_gap)
    ok &= gaps[np.clip(hi - 1, 0, n_t - 1)] == gaps[np.minimum(lo, n_t - 1)]
    sel = np.flatnonzero(ok)
    if len(sel):
        # one padded (strides, samples) matrix: row sums of zero-padded rows (same values, summation
        # order may differ in the last bit from the per-stride mean)
        idx, mask = _rows(lo[sel], hi[sel], n_t)
        seg = np.where(mask, env[idx], 0.0)
        out[sel] = seg.sum(axis=1) / (hi[sel] - lo[sel])
    return out


_Q = np.true_divide(np.asarray([5, 95]), 100)


def _p5_p95(seg: np.ndarray) -> tuple[float, float]:
    """``np.percentile(seg, [5, 95])`` (linear method), bit-identical, without its per-call overhead."""
    n = len(seg)
    s = np.sort(seg)
    if np.isnan(s[-1]):
        p5, p95 = np.percentile(seg, [5, 95])
        return p5, p95
    out = []
    for v in _Q * (n - 1):
        i = int(np.floor(v))
        g = v - i
        a = s[i]
        b = s[min(i + 1, n - 1)]
        d = b - a
        out.append(b - d * (1 - g) if g >= 0.5 else a + d * g)
    return out[0], out[1]


def _pct_rows(s: np.ndarray, rows: np.ndarray, n: np.ndarray, q: float) -> np.ndarray:
    """Row-wise :func:`_p5_p95` linear interpolation at quantile ``q`` of sorted rows of lengths ``n``."""
    v = q * (n - 1)
    i = np.floor(v).astype(np.int64)
    g = v - i
    a = s[rows, i]
    b = s[rows, np.minimum(i + 1, n - 1)]
    d = b - a
    return np.where(g >= 0.5, b - d * (1 - g), a + d * g)


def activation_onset_ms(
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

    Vectorised over strides (padded matrices); the same element-wise arithmetic as the per-stride
    reference loop in tests/test_stream_science_vectorised.py, so bit-identical to it.
    """
    t = np.asarray(t_s, dtype=float)
    env = np.asarray(env_uV, dtype=float)
    ic = np.asarray(ic_s, dtype=float)
    nxt = np.asarray(ic_next_s, dtype=float)
    out = np.full(len(ic), np.nan)
    if len(t) < 3 or len(ic) == 0:
        return out
    n_t = len(t)
    w_all = window_fraction * (nxt - ic)
    a_all = np.searchsorted(t, ic - w_all)
    b_all = np.searchsorted(t, nxt - w_all)
    hi_all = np.searchsorted(t, ic + w_all, side="left")
    sel = np.flatnonzero(b_all - a_all >= 4)
    if len(sel) == 0:
        return out
    a, b = a_all[sel], b_all[sel]
    idx, mask = _rows(a, b, n_t)
    seg = env[idx]
    has_nan = np.where(mask, np.isnan(seg), False).any(axis=1)
    s = np.sort(np.where(mask, seg, np.inf), axis=1)
    n = b - a
    rows = np.arange(len(sel))
    with np.errstate(invalid="ignore"):  # inf padding of rows holding NaN (recomputed below)
        p5, p95 = (_pct_rows(s, rows, n, q) for q in _Q)
    for r in np.flatnonzero(has_nan):  # np.percentile's NaN semantics, as in _p5_p95
        p5[r], p95[r] = _p5_p95(env[a[r] : b[r]])
    theta = p5 + threshold_fraction * (p95 - p5)
    lo = np.maximum(a, 1)
    hi = hi_all[sel]
    go = (p95 > p5) & (hi > lo)
    if not go.any():
        return out
    sel, theta, lo, hi = sel[go], theta[go], lo[go], hi[go]
    width = int((hi - lo).max())
    col = np.arange(width)
    cur_i = np.minimum(lo[:, None] + col, n_t - 1)
    cross = (col < (hi - lo)[:, None]) & (env[cur_i - 1] < theta[:, None]) & (env[cur_i] >= theta[:, None])
    found = cross.any(axis=1)
    i = lo[found] + cross[found].argmax(axis=1)
    th = theta[found]
    frac = (th - env[i - 1]) / (env[i] - env[i - 1])
    out[sel[found]] = 1000.0 * (t[i - 1] + frac * (t[i] - t[i - 1]) - ic[sel[found]])
    return out


def glute_share(
    glute_max_uV: np.ndarray, hamstrings_uV: np.ndarray, gastrocnemius_uV: np.ndarray
) -> np.ndarray:
    """``G / (G + H + C)`` from raw mean envelopes (uV); NaN where the sum is not positive."""
    g, h, c = (np.asarray(x, dtype=float) for x in (glute_max_uV, hamstrings_uV, gastrocnemius_uV))
    total = g + h + c
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, g / total, np.nan)


def posterior_chain_shares(
    glute_max_uV: np.ndarray, hamstrings_uV: np.ndarray, gastrocnemius_uV: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(G, H, C) / (G + H + C)`` from raw mean envelopes (uV): glute, hamstring and calf shares.

    NaN where the sum is not positive or a channel is missing; the glute share equals :func:`glute_share`.
    """
    g, h, c = (np.asarray(x, dtype=float) for x in (glute_max_uV, hamstrings_uV, gastrocnemius_uV))
    total = g + h + c
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = total > 0
        return tuple(np.where(ok, x / total, np.nan) for x in (g, h, c))  # type: ignore[return-value]


@dataclass
class EmgReference:
    """Per-session running reference of one muscle and side: median of the first ``n`` stride means.

    ``normalise(values)`` consumes stride means in time order and returns ``value / ref`` where ``ref`` is
    the median of the first ``min(n, k)`` valid means seen so far (including the current one). The state
    is at most ``n`` floats, carried between stream batches.
    """

    n: int = REFERENCE_STRIDES
    values: list[float] = field(default_factory=list)

    def normalise(self, means: np.ndarray) -> np.ndarray:
        v = np.asarray(means, dtype=float)
        out = np.full(len(v), np.nan)
        finite = np.flatnonzero(np.isfinite(v))
        k = 0
        while k < len(finite) and len(self.values) < self.n:  # filling up: the median moves per value
            i = finite[k]
            self.values.append(float(v[i]))
            ref = float(np.median(self.values))
            out[i] = v[i] / ref if ref > 0 else np.nan
            k += 1
        if k < len(finite):  # full: one reference for the rest
            ref = float(np.median(self.values))
            rest = finite[k:]
            out[rest] = v[rest] / ref if ref > 0 else np.nan
        return out


#: the strides table columns :func:`stride_columns` fills
STRIDE_COLUMNS: tuple[str, ...] = (
    *(f"{col}_act_norm" for col in MUSCLE_COLUMNS.values()),
    "glute_share",
    "hamstring_share",
    "calf_share",
    "glute_onset_ms",
    "hamstring_onset_ms",
    "recruitment_inverted",
)


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
    """The EMG shorts' stride columns for strides of ``foot`` (its side's muscles): ``data`` holds the
    envelopes (uV) in ``channels`` order (``<muscle>_<side>``, :data:`schemas.events.EMG_CHANNELS`),
    ``t_s`` the sample times on the strides' clock. ``reference`` is the session's per-muscle
    :class:`EmgReference` values (``"<muscle>_<side>" -> floats``), updated in place: strides must come
    in time order per side. ``recruitment_inverted`` is an object array of ``True``/``False``/``None``.
    """
    from schemas.events import EMG_CHANNELS

    order = tuple(EMG_CHANNELS)
    out: dict[str, np.ndarray] = {}
    means: dict[str, np.ndarray] = {}
    onset: dict[str, np.ndarray] = {}
    for muscle, col in MUSCLE_COLUMNS.items():
        env = data[:, order.index(f"{muscle}_{foot}")].astype(float)
        means[muscle] = stride_emg_means(t_s, env, ic_s, ic_next_s, max_gap_s)
        out[f"{col}_act_norm"] = EmgReference(values=reference.setdefault(f"{muscle}_{foot}", [])).normalise(
            means[muscle]
        )
        if muscle in ("gluteus_maximus", "hamstrings"):
            onset[muscle] = np.where(
                np.isfinite(means[muscle]), activation_onset_ms(t_s, env, ic_s, ic_next_s), np.nan
            )
    shares = posterior_chain_shares(means["gluteus_maximus"], means["hamstrings"], means["gastrocnemius"])
    out.update(zip(("glute_share", "hamstring_share", "calf_share"), shares, strict=True))
    g, h = onset["gluteus_maximus"], onset["hamstrings"]
    out["glute_onset_ms"], out["hamstring_onset_ms"] = g, h
    inverted = np.full(len(ic_s), None, dtype=object)
    known = np.isfinite(g) & np.isfinite(h)
    inverted[known] = (h < g)[known]
    out["recruitment_inverted"] = inverted
    return out
