"""Benchmark of the daily Beam job (FnApiRunner, this machine).

1. **Simulated-size fleet, raw inputs**: 20 runners x 28 days of synthetic strides (every stride,
   both feet) and 1 Hz watch records written to a Parquet lake; timed: the whole job
   (read partitions -> session summaries -> daily rows -> GE gate -> publish) for the 28 dates.
2. **1,000 runners x 90 days, pre-aggregated per session**: raw 1 Hz records for that fleet would
   be ~10^8 rows, so the session summaries (the output of the job's first stage) are generated
   directly; timed: ``DailyFromSummaries`` + ``ValidateAndPublish`` (daily rows, rolling load,
   compensation, GE gate, publish) for the 90 dates.

Run: ``python -m bench.daily_bench`` (or ``python -m bench``).
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
import uuid
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from infra.settings import Paths
from pipelines.daily.compute import LOOKBACK_DAYS
from pipelines.daily.pipeline import run_daily
from pipelines.daily.synthetic import random_traits, tables_for_fleet
from pipelines.daily.transforms import DailyFromSummaries, ValidateAndPublish
from pipelines.lake import read_table, write_file_atomic, write_partitioned
from pipelines.science import compensation as comp
from pipelines.science import load
from schemas.daily_table import DAILY

FIRST = dt.date(2024, 1, 1)


def bench_raw(root: Path, runners: int = 20, days: int = 28) -> None:
    paths = Paths(root / "raw").ensure()
    t0 = time.perf_counter()
    tabs = tables_for_fleet(random_traits(runners, seed=1), FIRST, days, seed=2)
    for name in ("strides", "watch_records", "sessions"):
        write_partitioned(tabs[name], paths.table(name), ["date"], "part-0.parquet")
    write_file_atomic(tabs["runners"], paths.table("runners") / "part-0.parquet")
    t_gen = time.perf_counter() - t0
    n_sessions = tabs["sessions"].num_rows // 2
    print(
        f"raw fleet: {runners} runners x {days} days, {n_sessions} sessions, "
        f"{tabs['strides'].num_rows:,} stride rows, {tabs['watch_records'].num_rows:,} watch rows "
        f"(generated + written in {t_gen:.1f} s)"
    )
    t0 = time.perf_counter()
    res = run_daily(paths, FIRST, FIRST + dt.timedelta(days=days - 1))
    t_job = time.perf_counter() - t0
    rows = read_table(paths.table("daily"), DAILY).num_rows
    n_in = tabs["strides"].num_rows + tabs["watch_records"].num_rows
    print(
        f"  daily job (read -> summaries -> daily -> GE gate -> publish), FnApiRunner: {t_job:.1f} s for "
        f"{len(res.dates)} dates, {rows} rows; {n_in / t_job:,.0f} input rows/s; blocked={len(res.blocked)}"
    )


def _summaries(runners: int, days: int, seed: int = 3) -> list[tuple[str, tuple[str, dict]]]:
    rng = np.random.default_rng(seed)
    out: list[tuple[str, tuple[str, dict]]] = []
    hr_grid = np.arange(load.HR_BINS)
    nan_watch = dict.fromkeys(comp.WATCH_STAT_KEYS, float("nan"))
    start0 = int(dt.datetime(FIRST.year, FIRST.month, FIRST.day, 6, tzinfo=dt.UTC).timestamp() * 1e6)
    for r in range(runners):
        rid = f"r{r:05d}"
        out.append(
            (
                rid,
                (
                    "profile",
                    {
                        "runner_id": rid,
                        "cohort": f"c{r % 10}",
                        "sex": "female" if r % 2 else "male",
                        "birth_year_band": "1985-1989",
                        "time_zone": "Europe/Copenhagen",
                        "resting_hr_bpm": None if r % 3 == 0 else 50,
                        "max_hr_bpm": None if r % 3 == 0 else 190,
                    },
                ),
            )
        )
        base = rng.uniform(0, 0.3, 8)
        for d in range(-LOOKBACK_DAYS, days):
            if rng.random() > 0.7:
                continue
            dur = float(rng.uniform(1800, 4200))
            hr_mean = rng.uniform(135, 165)
            hist = np.exp(-0.5 * ((hr_grid - hr_mean) / 8.0) ** 2)
            hist *= dur / hist.sum()
            n = dur * 2.8
            stats = {
                "n_ok": n,
                "glute_act": 1 - base[0] + rng.normal(0, 0.03),
                "n_glute": n,
                "calf_act": 1 + base[1] + rng.normal(0, 0.03),
                "n_calf": n,
                "ham_act": 1 + base[2] + rng.normal(0, 0.03),
                "n_ham": n,
                "glute_share": 0.33,
                "n_inv_obs": n,
                "n_inverted": n * base[3],
                "pelvic_drop_deg": 5 + 10 * base[4],
                "n_pelvis": n,
                "fsa_deg": 5 + 50 * base[5],
                "n_fsa": n,
                "cadence_spm": 170.0,
                "n_cadence": n,
                "gct_left_ms": 240.0,
                "gct_right_ms": 240 * (1 + base[6] / 5),
                "n_gct_lr": n / 2,
                "glute_left": 0.9,
                "glute_right": 0.95,
                "n_glute_lr": n / 2,
                "gct_early_ms": 240.0 if dur >= comp.LONG_RUN_MIN_S else float("nan"),
                "gct_late_ms": 240 * (1 + base[7] / 5) if dur >= comp.LONG_RUN_MIN_S else float("nan"),
                "glute_early": 0.95,
                "glute_late": 0.9,
            }
            out.append(
                (
                    rid,
                    (
                        "session",
                        {
                            "runner_id": rid,
                            "session_id": f"{rid}-{d}",
                            "start_us": start0 + d * 86_400_000_000,
                            "sport": "running",
                            "duration_s": dur,
                            "distance_m": dur * 3.0,
                            "steps": n,
                            "steps_source": "strides",
                            "hr_seconds": hist,
                            "impact_load_g": n * 8.0,
                            "n_impact": n,
                            "sensors": "emg,foot_imu,pelvis_imu,watch",
                            **stats,
                            **nan_watch,
                        },
                    ),
                )
            )
    return out


def bench_summaries(root: Path, runners: int = 1000, days: int = 90) -> None:
    paths = Paths(root / "agg").ensure()
    t0 = time.perf_counter()
    items = _summaries(runners, days)
    t_gen = time.perf_counter() - t0
    n_sessions = sum(1 for _, (k, _) in items if k == "session")
    print(
        f"pre-aggregated fleet: {runners} runners x {days} days (+{LOOKBACK_DAYS} d lookback), "
        f"{n_sessions:,} session summaries (generated in {t_gen:.1f} s)"
    )
    last = FIRST + dt.timedelta(days=days - 1)
    t0 = time.perf_counter()
    with beam.Pipeline(runner=FnApiRunner()) as p:
        summaries = p | "Summaries" >> beam.Create(
            [x for x in items if x[1][0] == "session"], reshuffle=False
        )
        profiles = p | "Profiles" >> beam.Create([x for x in items if x[1][0] == "profile"], reshuffle=False)
        _ = (
            (summaries, profiles)
            | "DailyRows" >> DailyFromSummaries(FIRST, last)
            | "Publish" >> ValidateAndPublish(str(paths.table("daily")), str(paths.quality), uuid.uuid4().hex)
        )
    t_job = time.perf_counter() - t0
    rows = read_table(paths.table("daily"), DAILY).num_rows
    print(
        f"  DailyFromSummaries + GE gate + publish, FnApiRunner: {t_job:.1f} s for {days} dates, {rows:,} rows "
        f"({rows / t_job:,.0f} runner-days/s, {n_sessions / t_job:,.0f} sessions/s)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="daily-bench-") as tmp:
        bench_raw(Path(tmp))
        bench_summaries(Path(tmp))


if __name__ == "__main__":
    main()
