"""Nightly job and analyst queries at scale: 10,000 runners x 90 days, >= 50 million strides.

``python -m bench.nightly_bench`` (also part of ``python -m bench``). The synthetic lake is written once
under ``data/bench_lake`` (``GLUTEFLOW_BENCH_LAKE`` to move it) and reused. Prints, measured in one run:

* the nightly job's wall time by stage (target < 60 s) and its throughput (runners/s);
* each docs/queries.md query's time on the catalog (target < 2 s), and the partition pruning of the
  one-runner query (files scanned / files in the table);
* ratios: nightly time / 60 s target, slowest query / 2 s target.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from bench.synthetic_lake import LakeSpec, ensure_lake
from pipelines.catalog.builder import connect_catalog
from pipelines.catalog.queries import load_queries
from pipelines.nightly.job import run_nightly

NIGHTLY_TARGET_S = 60.0
QUERY_TARGET_S = 2.0


def _lake_root() -> Path:
    return Path(os.environ.get("GLUTEFLOW_BENCH_LAKE", "data/bench_lake")).resolve()


def main() -> None:
    spec = LakeSpec()
    t = time.perf_counter()
    paths, meta = ensure_lake(_lake_root(), spec)
    cached = time.perf_counter() - t < 5
    how = "cached" if cached else f"written in {meta['seconds']} s"
    print(
        f"lake: {meta['runners']:,} runners, {meta['daily_rows']:,} daily rows, {meta['stride_rows']:,} stride rows "
        f"({how}) at {paths.root}"
    )
    size = sum(p.stat().st_size for p in paths.lake.rglob("*.parquet"))
    print(
        f"lake size on disk: {size / 1e9:.2f} GB ({size / max(meta['stride_rows'], 1):.1f} B per stride row)"
    )

    day = spec.end
    res = run_nightly(paths, day)
    tm = res.timings_s
    stages = " ".join(f"{k}={v:.2f}s" for k, v in tm.items() if k != "total")
    print(f"nightly {day}: {tm['total']:.1f} s for {res.runners:,} runners ({stages})")
    print(
        f"  {res.runners / tm['total']:,.0f} runners/s; levels {res.levels}; {len(res.reports)} cohort reports; "
        f"quality {'passed' if res.quality.success else 'FAILED'} "
        + ", ".join(f"{r.suite}:{r.rows:,} rows" for r in res.quality.results)
    )
    print(f"  ratio nightly / {NIGHTLY_TARGET_S:.0f} s target = {tm['total'] / NIGHTLY_TARGET_S:.2f}")

    con = connect_catalog(paths.catalog)
    times = []
    for q in load_queries():
        con.execute(q.sql).fetchall()  # warm the OS page cache / parquet metadata once
        t = time.perf_counter()
        rows = con.execute(q.sql).fetchall()
        dt_s = time.perf_counter() - t
        times.append(dt_s)
        flag = "" if dt_s < QUERY_TARGET_S else "  (over target)"
        print(f"  query {q.number:2d} {dt_s:6.3f} s  {len(rows):6d} rows  {q.title}{flag}")
        if q.number == 8:
            plan = con.execute("EXPLAIN ANALYZE " + q.sql).fetchall()[0][1]
            m = re.search(r"Scanning Files:\s*(\d+)\s*/\s*(\d+)", plan)
            if m:
                print(f"           pruning: {m.group(1)} of {m.group(2)} strides files scanned")
    print(
        f"queries: {len(times)}, median {sorted(times)[len(times) // 2]:.3f} s, max {max(times):.3f} s; "
        f"ratio slowest / {QUERY_TARGET_S:.0f} s target = {max(times) / QUERY_TARGET_S:.2f}"
    )
    con.close()


if __name__ == "__main__":
    main()
