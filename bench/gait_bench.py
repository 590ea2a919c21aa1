"""Benchmark: gluteflow's gait-event detector vs the gaitmap library on gaitmap's real walking recording.

Run:  .venv/bin/python bench/gait_bench.py [--fixtures ../shared/fixtures] [--repeats 20]

Prints one table (speed in samples/s and accuracy against the motion-capture reference for both feet) and
the speed ratio measured in this run. gaitmap is an optional benchmark-only dependency (``pip install
gaitmap`` / the ``bench`` extra); product code never imports it. gaitmap's MIT core only ships
``HerzerEventDetection``, which needs a stride segmentation as input; the DTW segmentation (BarthDtw)
lives in the AGPL add-on ``gaitmap_mad``. Without it, Herzer gets the *reference* stride borders
(``stride_borders_sample.csv``): an oracle segmentation that flatters its accuracy and leaves the
segmentation cost out of its time, so the comparison is conservative for gluteflow.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pipelines.science.gait import detect_gait_events  # noqa: E402
from pipelines.science.gait_eval import (  # noqa: E402
    FEET,
    GaitmapFixture,
    evaluate_against_reference,
    load_gaitmap_fixture,
)

DEFAULT_FIXTURES = REPO / ".." / "shared" / "fixtures"


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _accuracy(fx: GaitmapFixture, detected: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    out = {}
    for foot in FEET:
        ref = fx.stride_events[fx.stride_events["foot"] == foot]
        out[foot] = evaluate_against_reference(detected[foot], ref, fx.sample_rate_hz, tolerance_ms=100.0)
    return out


def bench_gluteflow(fx: GaitmapFixture, repeats: int) -> dict:
    def run() -> dict[str, dict[str, np.ndarray]]:
        res = {}
        for foot in FEET:
            ev = detect_gait_events(fx.acc_m_s2[foot], fx.gyr_deg_s[foot], fx.sample_rate_hz)
            res[foot] = {"ic": ev.all_ic, "tc": ev.all_tc}
        return res

    detected = run()
    t = _best_time(run, repeats)
    n = sum(len(fx.gyr_deg_s[f]) for f in FEET)
    return {"name": "gluteflow detect_gait_events (no segmentation input)", "time_s": t, "samples": n,
            "acc": _accuracy(fx, detected)}  # fmt: skip


def bench_gaitmap(fx: GaitmapFixture, repeats: int) -> dict | None:
    try:
        from gaitmap.event_detection import HerzerEventDetection
        from gaitmap.utils.coordinate_conversion import convert_to_fbf
    except ImportError:
        return None
    frames = {}
    for foot in FEET:
        frames[f"{foot}_sensor"] = pd.DataFrame(
            np.hstack([fx.acc_m_s2[foot], fx.gyr_deg_s[foot]]),
            columns=["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"],
        )
    data_fbf = convert_to_fbf(frames, left_like="left_", right_like="right_")
    if fx.stride_borders is None:
        return None
    strides = {
        f"{foot}_sensor": fx.stride_borders[fx.stride_borders["foot"] == foot][["s_id", "start", "end"]]
        .set_index("s_id")
        .astype(int)
        for foot in FEET
    }

    def run():
        return HerzerEventDetection().detect(data_fbf, strides, sampling_rate_hz=fx.sample_rate_hz)

    ed = run()
    detected = {}
    for foot in FEET:
        ev = ed.annotated_original_event_list_[f"{foot}_sensor"]
        detected[foot] = {"ic": ev["ic"].to_numpy(dtype=float), "tc": ev["tc"].to_numpy(dtype=float)}
    t = _best_time(run, repeats)
    n = sum(len(fx.gyr_deg_s[f]) for f in FEET)
    return {"name": "gaitmap HerzerEventDetection (oracle stride borders)", "time_s": t, "samples": n,
            "acc": _accuracy(fx, detected)}  # fmt: skip


def _row(r: dict) -> list[str]:
    cells = [r["name"], f"{r['samples'] / r['time_s']:,.0f}"]
    for foot in FEET:
        a = r["acc"][foot]
        cells.append(
            f"{a['detection_rate'] * 100:.0f}%/{a['false_detections_ic']}  "
            f"{a['ic_median_abs_error_ms']:.1f}/{a['ic_p95_abs_error_ms']:.1f}  "
            f"{a['tc_median_abs_error_ms']:.1f}/{a['tc_p95_abs_error_ms']:.1f}"
        )
    return cells


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES, help="folder holding gaitmap/")
    ap.add_argument("--repeats", type=int, default=20, help="timing repeats (best of)")
    args = ap.parse_args(argv)
    gdir = args.fixtures / "gaitmap"
    if not (gdir / "imu_sample.csv").exists():
        print(f"{gdir} not found: the gait benchmark needs gaitmap's example recording", file=sys.stderr)
        return 2
    fx = load_gaitmap_fixture(gdir)
    ours = bench_gluteflow(fx, args.repeats)
    theirs = bench_gaitmap(fx, max(3, args.repeats // 4))

    header = [
        "detector",
        "samples/s",
        "left: det%/false IC|TC med/p95 ms",
        "right: det%/false IC|TC med/p95 ms",
    ]
    rows = [_row(ours)] + ([_row(theirs)] if theirs else [])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(
        f"gaitmap example recording, {fx.sample_rate_hz} Hz, {ours['samples']} samples (both feet), tolerance 100 ms"
    )
    print(
        "accuracy cells: detection rate/false IC detections  IC median/p95 |error| ms  TC median/p95 |error| ms"
    )
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    if theirs is None:
        print("gaitmap not installed: only gluteflow's numbers (pip install 'gluteflow[bench]' to compare)")
        return 0
    ratio = theirs["time_s"] / ours["time_s"]
    print(f"speed ratio gluteflow / gaitmap Herzer: {ratio:.1f}x (gaitmap time excludes its segmentation)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
