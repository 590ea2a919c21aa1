"""Evaluate detected gait events against reference annotations (e.g. gaitmap's motion-capture events)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.science.gait import GaitEvents

__all__ = ["GaitmapFixture", "evaluate_against_reference", "load_gaitmap_fixture", "match_events"]

FEET = ("left", "right")
IMU_COLUMNS = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")


@dataclass
class GaitmapFixture:
    """gaitmap's example recording.

    Attributes
    ----------
    acc_m_s2, gyr_deg_s
        ``{"left": (n, 3), "right": (n, 3)}`` arrays in gaitmap's foot sensor frame.
    stride_events
        Reference events, columns ``s_id, foot, start, end, ic, tc, min_vel, pre_ic`` (sample indices).
    stride_borders
        Reference stride borders (``s_id, foot, start, end``) or ``None`` when the file is absent.
    sample_rate_hz
        204.8 Hz for gaitmap's example data.
    """

    acc_m_s2: dict[str, np.ndarray]
    gyr_deg_s: dict[str, np.ndarray]
    stride_events: pd.DataFrame
    stride_borders: pd.DataFrame | None
    sample_rate_hz: float = 204.8


def load_gaitmap_fixture(directory: str | Path, sample_rate_hz: float = 204.8) -> GaitmapFixture:
    """Read ``imu_sample.csv`` (two-row header: sensor, axis) and ``stride_events_sample.csv``.

    Parameters
    ----------
    directory
        Folder holding gaitmap's example CSVs (``fixtures/gaitmap``).
    sample_rate_hz
        Sampling rate of the recording (204.8 Hz for gaitmap's example).
    """
    d = Path(directory)
    imu = pd.read_csv(d / "imu_sample.csv", header=[0, 1], index_col=0)
    acc, gyr = {}, {}
    for foot in FEET:
        s = imu[f"{foot}_sensor"]
        acc[foot] = s[["acc_x", "acc_y", "acc_z"]].to_numpy(dtype=float)
        gyr[foot] = s[["gyr_x", "gyr_y", "gyr_z"]].to_numpy(dtype=float)
    events = pd.read_csv(d / "stride_events_sample.csv")
    borders_path = d / "stride_borders_sample.csv"
    borders = pd.read_csv(borders_path) if borders_path.exists() else None
    return GaitmapFixture(acc, gyr, events, borders, float(sample_rate_hz))


def match_events(
    detected: np.ndarray, reference: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of two event lists (same unit) by increasing distance.

    Returns
    -------
    (det_idx, ref_idx)
        Indices of matched pairs with ``|detected - reference| <= tolerance``; each event is used once.
    """
    det = np.asarray(detected, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if len(det) == 0 or len(ref) == 0:
        return np.empty(0, int), np.empty(0, int)
    dist = np.abs(det[:, None] - ref[None, :])
    cand = np.argwhere(dist <= tolerance)
    order = np.argsort(dist[cand[:, 0], cand[:, 1]], kind="stable")
    used_d, used_r, pairs = set(), set(), []
    for i, j in cand[order]:
        if i not in used_d and j not in used_r:
            used_d.add(i)
            used_r.add(j)
            pairs.append((i, j))
    pairs.sort(key=lambda t: t[1])
    if not pairs:
        return np.empty(0, int), np.empty(0, int)
    a = np.array(pairs, dtype=int)
    return a[:, 0], a[:, 1]


def evaluate_against_reference(
    detected: GaitEvents | dict[str, np.ndarray],
    reference: pd.DataFrame,
    sample_rate_hz: float,
    tolerance_ms: float = 100.0,
) -> dict[str, float]:
    """Compare detected IC/TC events of **one foot** with reference events.

    Each event type is matched one-to-one within ``tolerance_ms``. Reference strides count as detected
    when their IC is matched. Detections count as false when they fall inside the annotated range
    ``[min(reference) - tolerance, max(reference) + tolerance]`` and match no reference event
    (detections outside the annotated part of the recording are not judged).

    Parameters
    ----------
    detected
        :class:`GaitEvents` (uses ``all_ic``/``all_tc``) or a dict with ``"ic"`` and ``"tc"`` arrays,
        in (fractional) samples.
    reference
        One foot's reference events with columns ``ic`` and ``tc`` (samples).
    sample_rate_hz
        Sampling rate (Hz) to convert samples to ms: ``ms = samples * 1000 / sample_rate_hz``.
    tolerance_ms
        Matching tolerance (ms).

    Returns
    -------
    dict
        ``n_reference, n_detected_ic, detection_rate, false_detections_ic, false_detections_tc`` and for
        ``ev`` in ``ic, tc``: ``{ev}_matched, {ev}_median_abs_error_ms, {ev}_p95_abs_error_ms,
        {ev}_mean_error_ms`` (signed, detected - reference), ``{ev}_max_abs_error_ms``.
    """
    if isinstance(detected, GaitEvents):
        det = {"ic": detected.all_ic, "tc": detected.all_tc}
    else:
        det = {k: np.asarray(detected[k], dtype=float) for k in ("ic", "tc")}
    to_ms = 1000.0 / float(sample_rate_hz)
    tol = tolerance_ms / to_ms
    out: dict[str, float] = {"n_reference": int(len(reference))}
    ref_all = reference[["ic", "tc"]].to_numpy(dtype=float)
    lo, hi = np.nanmin(ref_all) - tol, np.nanmax(ref_all) + tol
    for ev in ("ic", "tc"):
        ref = reference[ev].to_numpy(dtype=float)
        ref = ref[np.isfinite(ref)]
        d = det[ev][np.isfinite(det[ev])]
        di, ri = match_events(d, ref, tol)
        err_ms = (d[di] - ref[ri]) * to_ms
        in_range = (d >= lo) & (d <= hi)
        unmatched = np.ones(len(d), bool)
        unmatched[di] = False
        out[f"n_detected_{ev}"] = int(in_range.sum())
        out[f"{ev}_matched"] = int(len(ri))
        out[f"false_detections_{ev}"] = int((unmatched & in_range).sum())
        out[f"{ev}_detection_rate"] = len(ri) / len(ref) if len(ref) else float("nan")
        if len(err_ms):
            a = np.abs(err_ms)
            out[f"{ev}_median_abs_error_ms"] = float(np.median(a))
            out[f"{ev}_p95_abs_error_ms"] = float(np.percentile(a, 95))
            out[f"{ev}_max_abs_error_ms"] = float(a.max())
            out[f"{ev}_mean_error_ms"] = float(err_ms.mean())
        else:
            for k in ("median_abs", "p95_abs", "max_abs", "mean"):
                out[f"{ev}_{k}_error_ms"] = float("nan")
    out["detection_rate"] = out["ic_detection_rate"]
    return out


def evaluate_fixture(
    fixture: GaitmapFixture, detector, tolerance_ms: float = 100.0
) -> dict[str, dict[str, float]]:
    """Run ``detector(acc, gyr, fs) -> GaitEvents`` on both feet and evaluate each (plus ``"both"``)."""
    res: dict[str, dict[str, float]] = {}
    pooled_ref, pooled_det, offset = [], {"ic": [], "tc": []}, 0.0
    n = len(next(iter(fixture.gyr_deg_s.values())))
    for foot in FEET:
        ev = detector(fixture.acc_m_s2[foot], fixture.gyr_deg_s[foot], fixture.sample_rate_hz)
        ref = fixture.stride_events[fixture.stride_events["foot"] == foot]
        res[foot] = evaluate_against_reference(ev, ref, fixture.sample_rate_hz, tolerance_ms)
        # pool both feet by shifting the right foot past the end of the left recording
        r = ref[["ic", "tc"]].astype(float) + offset
        pooled_ref.append(r)
        pooled_det["ic"].append(np.asarray(ev.all_ic) + offset)
        pooled_det["tc"].append(np.asarray(ev.all_tc) + offset)
        offset += n + 10 * fixture.sample_rate_hz
    both_det = {k: np.concatenate(v) for k, v in pooled_det.items()}
    both = evaluate_against_reference(both_det, pd.concat(pooled_ref), fixture.sample_rate_hz, tolerance_ms)
    # false detections must be judged per foot (annotated ranges differ); sum them
    for k in ("false_detections_ic", "false_detections_tc", "n_detected_ic", "n_detected_tc"):
        both[k] = sum(res[f][k] for f in FEET)
    res["both"] = both
    return res


def main(argv: list[str] | None = None) -> int:
    """Print per-foot accuracy of ``detect_gait_events`` on gaitmap's recording.

    Usage: ``python -m pipelines.science.gait_eval [FIXTURES_DIR/gaitmap]``
    """
    import sys

    from pipelines.science.gait import detect_gait_events

    args = sys.argv[1:] if argv is None else argv
    d = (
        Path(args[0])
        if args
        else Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "gaitmap"
    )
    if not (d / "imu_sample.csv").exists():
        print(f"{d} not found: needs gaitmap's example recording", file=sys.stderr)
        return 2
    res = evaluate_fixture(load_gaitmap_fixture(d), detect_gait_events)
    print(
        f"{'foot':6} {'ref':>4} {'det%':>6} {'false IC':>8} {'IC med':>7} {'IC p95':>7} {'TC med':>7} {'TC p95':>7}  (ms)"
    )
    for foot, r in res.items():
        print(
            f"{foot:6} {r['n_reference']:>4} {100 * r['detection_rate']:>6.1f} {r['false_detections_ic']:>8} "
            f"{r['ic_median_abs_error_ms']:>7.1f} {r['ic_p95_abs_error_ms']:>7.1f} "
            f"{r['tc_median_abs_error_ms']:>7.1f} {r['tc_p95_abs_error_ms']:>7.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
