"""End to end: simulator -> broker -> stream job -> daily job; compensation components vs the truth.

A small fleet (RUNNERS x DAYS, sessions scaled to a few minutes, default device realities) goes through
the real broker, the stream job (run until idle) and the daily job. Per runner, the median over its run
days of each component's ``<component>_raw`` must rank runners (Spearman) like the simulator's latent
trait that drives it (``jobs/simulate/traits.py``, ``jobs/simulate/signals.py``):

* glute deficit ~ mean glute under-activation over sides (gluteus max/med amplitude x (1 - ua));
* calf dominance ~ ``calf_dominance`` (gastrocnemius amplitude x (1 + calf_dominance));
* hamstring dominance ~ ``hamstring_dominance`` (hamstrings amplitude x (1 + hamstring_dominance));
  the three EMG components are posterior-chain shares (raw-envelope ratios of the same shorts,
  ``glute_share`` / ``calf_share`` / ``hamstring_share``) against a population reference, because the
  per-session normalised activations are ~1.0 for every runner by construction;
* pelvic drop ~ ``pelvic_drop_deg`` (runners with a pelvis IMU);
* asymmetry ~ ``|gct_balance_left_pct - 50|``: the simulator makes the sides differ through the GCT
  balance (left stance x bal/50, right x (2 - bal/50)), itself driven by the L/R glute under-activation
  gap; the component is the GCT symmetry index (foot IMUs, else the watch's GCT balance).

EMG components are ranked over runners with EMG shorts only, pelvic drop over runners with a pelvis IMU.
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy.stats import spearmanr

from infra.settings import Paths
from jobs.simulate.fleet import simulate_fleet
from jobs.stream_driver import StreamOptions, run
from pipelines.daily.pipeline import run_daily
from pipelines.lake import read_table

RUNNERS, DAYS, SCALE, SEED = 12, 3, 0.05, 3  # 9 full kits (8 with EMG data), 2 feet, 1 watch
START = dt.date(2026, 3, 2)
MIN_RHO = 0.8


def _truth(traits: pd.DataFrame) -> dict[str, tuple[pd.Series, str]]:
    """component -> (true trait per runner, sensor a runner needs to rank it)."""
    ua = (traits["glute_underactivation_left"] + traits["glute_underactivation_right"]) / 2
    return {
        "glute_deficit": (ua, "emg"),
        "calf_dominance": (traits["calf_dominance"], "emg"),
        "hamstring_dominance": (traits["hamstring_dominance"], "emg"),
        "pelvic_drop": (traits["pelvic_drop_deg"], "pelvis_imu"),
        "asymmetry": ((traits["gct_balance_left_pct"] - 50.0).abs(), ""),
    }


@pytest.mark.timeout(300)
def test_daily_components_rank_runners_like_the_true_traits(kafka: str, paths: Paths) -> None:
    t0 = time.monotonic()
    simulate_fleet(kafka, paths, RUNNERS, DAYS, start=START, seed=SEED, progress=False, duration_scale=SCALE)
    t_sim = time.monotonic()
    run(StreamOptions(kafka, paths, workers=1), until_idle_s=0.0, drain=True, log=lambda _: None)
    t_stream = time.monotonic()
    result = run_daily(paths, START, START + dt.timedelta(days=DAYS - 1))
    t_daily = time.monotonic()
    assert not result.blocked, result.blocked

    traits = pq.read_table(paths.truth / "runners.parquet").to_pandas().set_index("runner_id")
    daily = read_table(paths.table("daily")).to_pandas()
    print(
        f"\nsimulate {t_sim - t0:.1f} s, stream {t_stream - t_sim:.1f} s, daily {t_daily - t_stream:.1f} s; "
        f"{len(daily)} daily rows, kits {traits['kit'].value_counts().to_dict()}"
    )

    rhos: dict[str, float] = {}
    report = []
    for comp, (true, sensor) in _truth(traits).items():
        per = daily.groupby("runner_id")[f"{comp}_raw"].median().dropna()
        if sensor:
            wearing = [r for r, kit in traits["sensors"].fillna("").items() if sensor in kit.split(",")]
            per = per[per.index.isin(wearing)]
        assert len(per) >= 5, (comp, per)
        true = true.loc[per.index]
        assert true.std() > 0, (comp, "no spread in the true trait")
        rhos[comp] = float(spearmanr(per.to_numpy(), true.to_numpy())[0])
        report.append(f"  {comp:20s} n={len(per):2d} spearman {rhos[comp]:+.2f}")
        report.extend(f"      {r}: raw {per[r]:+.4f} true {true[r]:.3f}" for r in per.sort_values().index)
    print("\n".join(report))
    failed = {c: round(r, 2) for c, r in rhos.items() if not (np.isfinite(r) and r >= MIN_RHO)}
    summary = f"Spearman < {MIN_RHO}: {failed} (all: { {c: round(r, 2) for c, r in rhos.items()} })"
    assert not failed, summary
