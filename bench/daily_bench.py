"""Benchmark of the daily Beam job (FnApiRunner, this machine): runner-days per second.

1. **Simulated-size fleet, raw inputs**: 20 runners x 28 days of synthetic strides (every stride,
   both feet), 1 Hz watch records and session markers written to a Parquet lake; timed: the whole
   job (read partitions -> session summaries -> daily rows -> GE gate -> publish) for the 28 dates.
2. **1,000 runners x 90 days, pre-aggregated per session**: raw 1 Hz records for that fleet would
   be ~10^8 rows, so the session summaries (the output of the job's first stage, incl. the 132-day
   lookback) are generated directly and pickled into shards before the clock starts; timed:
   read the shards -> ``DailyFromSummaries`` + ``ValidateAndPublish`` (daily rows, rolling load,
   compensation, GE gate, publish) for the 90 dates. (Shards rather than ``beam.Create``: Create
   pickles and bz2-compresses all ~300 MB of summaries into the pipeline proto, which is bench
   overhead, not job work.)

Both print rows in, runner-days out, seconds and runner-days/s; the last line compares the two
throughputs. Run: ``python -m bench.daily_bench`` (or ``python -m bench``).
"""

from __future__ import annotations

import datetime as dt
import pickle
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


def _report(label: str, rows_in: int, what_in: str, runner_days: int, seconds: float) -> float:
    rate = runner_days / seconds
    print(
        f"  {label}: rows in {rows_in:,} ({what_in}), runner-days out {runner_days:,}, "
        f"{seconds:.1f} s, {rate:,.0f} runner-days/s"
    )
    return rate


def bench_raw(root: Path, runners: int = 20, days: int = 28) -> float:
    """Raw-input fleet; returns runner-days/s of the whole daily job."""
    paths = Paths(root / "raw").ensure()
    t0 = time.perf_counter()
    tabs = tables_for_fleet(random_traits(runners, seed=1), FIRST, days, seed=2)
    for name in ("strides", "watch_records", "sessions"):
        write_partitioned(tabs[name], paths.table(name), ["date"], "part-0.parquet")
    write_file_atomic(tabs["runners"], paths.table("runners") / "part-0.parquet")
    t_gen = time.perf_counter() - t0
    n_sessions = tabs["sessions"].num_rows // 2
    print(
        f"[1] raw fleet: {runners} runners x {days} days, {n_sessions} sessions "
        f"(generated + written to Parquet in {t_gen:.1f} s, not timed)\n"
        "    timed: whole daily job, FnApiRunner: read Parquet partitions -> session summaries -> "
        "daily rows -> GE gate -> publish"
    )
    t0 = time.perf_counter()
    res = run_daily(paths, FIRST, FIRST + dt.timedelta(days=days - 1))
    t_job = time.perf_counter() - t0
    rows = read_table(paths.table("daily"), DAILY).num_rows
    n_in = sum(tabs[k].num_rows for k in ("strides", "watch_records", "sessions", "runners"))
    return _report(
        f"{len(res.dates)} dates, blocked={len(res.blocked)}",
        n_in,
        f"{tabs['strides'].num_rows:,} strides + {tabs['watch_records'].num_rows:,} watch records + "
        f"{tabs['sessions'].num_rows:,} session markers + {tabs['runners'].num_rows} profiles",
        rows,
        t_job,
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
                "glute_share": 0.42 - 0.2 * base[0] + rng.normal(0, 0.01),
                "n_glute_share": n,
                "calf_share": 0.32 + 0.2 * base[1] + rng.normal(0, 0.01),
                "n_calf_share": n,
                "ham_share": 0.26 + 0.2 * base[2] + rng.normal(0, 0.01),
                "n_ham_share": n,
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


def _read_shard(path: str) -> list[tuple[str, tuple[str, dict]]]:
    with open(path, "rb") as f:
        return pickle.load(f)


def bench_summaries(root: Path, runners: int = 1000, days: int = 90, shards: int = 20) -> float:
    """Pre-aggregated fleet (session summaries + profiles); returns runner-days/s."""
    paths = Paths(root / "agg").ensure()
    t0 = time.perf_counter()
    items = _summaries(runners, days)
    n_sessions = sum(1 for _, (k, _) in items if k == "session")
    by_runner: dict[str, list] = {}
    for item in items:
        by_runner.setdefault(item[0], []).append(item)
    ids = sorted(by_runner)
    shard_paths = []
    for k in range(shards):
        path = root / f"summaries-{k:03d}.pkl"
        with open(path, "wb") as f:
            pickle.dump([x for rid in ids[k::shards] for x in by_runner[rid]], f, protocol=5)
        shard_paths.append(str(path))
    del items, by_runner
    t_gen = time.perf_counter() - t0
    print(
        f"[2] pre-aggregated fleet: {runners:,} runners x {days} days (+{LOOKBACK_DAYS} d lookback), "
        f"{n_sessions:,} session summaries + {runners:,} profiles (generated + pickled into {shards} shards "
        f"in {t_gen:.1f} s, not timed)\n"
        "    timed: FnApiRunner: read the shards -> DailyFromSummaries (group by runner, daily rows, rolling "
        "load, compensation) -> ValidateAndPublish (GE gate, publish)"
    )
    last = FIRST + dt.timedelta(days=days - 1)
    t0 = time.perf_counter()
    with beam.Pipeline(runner=FnApiRunner()) as p:
        items_pc = (
            p
            | "Shards" >> beam.Create(shard_paths, reshuffle=False)
            | "ReadShards" >> beam.FlatMap(_read_shard)
        )
        summaries = items_pc | "Sessions" >> beam.Filter(lambda x: x[1][0] == "session")
        profiles = items_pc | "Profiles" >> beam.Filter(lambda x: x[1][0] == "profile")
        _ = (
            (summaries, profiles)
            | "DailyRows" >> DailyFromSummaries(FIRST, last)
            | "Publish" >> ValidateAndPublish(str(paths.table("daily")), str(paths.quality), uuid.uuid4().hex)
        )
    t_job = time.perf_counter() - t0
    rows = read_table(paths.table("daily"), DAILY).num_rows
    return _report(
        f"{days} dates", n_sessions + runners, "pre-aggregated session summaries + profiles", rows, t_job
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="daily-bench-") as tmp:
        raw = bench_raw(Path(tmp))
        agg = bench_summaries(Path(tmp))
    print(
        f"throughput ratio, 1,000 x 90 pre-aggregated / 20 x 28 raw: {agg / raw:.1f}x "
        f"({agg:,.0f} vs {raw:,.0f} runner-days/s; the raw case also pays reading and summarising "
        "every stride and watch record)"
    )


if __name__ == "__main__":
    main()
