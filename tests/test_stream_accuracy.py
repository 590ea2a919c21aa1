"""Accuracy of the stream job on a simulated fleet, against the simulator's truth.

A small fleet (12 runners x 2 days, sessions scaled to 1-5 min, the default device realities: dropped,
duplicated and out-of-order blocks, battery deaths, per-device clock offsets) goes through the real broker
and the stream job (run until idle). The strides table is then compared with ``truth/strides.parquet``:

* **events**: initial contact and toe-off within one sample period (5 ms at 200 Hz) of the truth, on the
  device clock (``ic_device_time_us`` / ``tc_device_time_us``), for >= 99 % of the true strides that were
  recorded. Recorded = the truth's ``recorded`` (device alive) and the foot unit's delivered blocks cover
  ``[IC - 0.4 s, next IC + 0.1 s]``: the detector finds an IC after the preceding mid-swing (~0.25 s
  before IC), so a stride whose swing fell into a dropped block cannot be detected by design.
* **no phantom strides**: every detected stride has a true IC within 50 ms.
* **traits**: per runner, the mean glute share and the mean glute-minus-hamstring onset rank-correlate
  (Spearman) with the latent traits (glute under-activation, glute onset lag) and the true mean share.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.stats import spearmanr

from infra import topics
from infra.kafka_io import end_offsets, make_consumer, read_partition
from infra.settings import Paths
from jobs.simulate.fleet import simulate_fleet
from jobs.stream_driver import StreamOptions, run
from pipelines.lake import read_table
from schemas.codec import decode
from schemas.tables import STRIDES

RUNNERS, DAYS, SCALE, SEED = 12, 2, 0.05, 3  # 8 runners with EMG in this fleet
SAMPLE_US = 5_000  # one sample period at 200 Hz
PRE_US, POST_US = 400_000, 100_000  # data the detector needs around a stride


def _us(col) -> np.ndarray:
    return np.asarray(col.cast("int64") if hasattr(col, "cast") else col, dtype=np.int64)


def _foot_coverage(bootstrap: str) -> dict[tuple[str, str], np.ndarray]:
    """(session, side) -> merged [start, end) device-time intervals of the delivered foot blocks."""
    blocks: dict[tuple[str, str], list[tuple[int, int]]] = {}
    consumer = make_consumer(bootstrap)
    try:
        name = topics.topic("sensor_blocks")
        for p, end in end_offsets(bootstrap, name, consumer).items():
            for _, _, value in read_partition(consumer, name, p, 0, end):
                b = decode(value)
                if b.sensor == "foot_imu":
                    blocks.setdefault((b.session_id, b.side), []).append((b.start_time_us, b.end_time_us))
    finally:
        consumer.close()
    merged = {}
    for key, iv in blocks.items():
        out: list[list[int]] = []
        for a, b in sorted(iv):
            if out and a <= out[-1][1] + 1_000:
                out[-1][1] = max(out[-1][1], b)
            else:
                out.append([a, b])
        merged[key] = np.asarray(out, np.int64)
    return merged


def _covered(iv: np.ndarray | None, a: int, b: int) -> bool:
    if iv is None or not len(iv):
        return False
    i = int(np.searchsorted(iv[:, 0], a, side="right")) - 1
    return i >= 0 and iv[i, 1] >= b


@pytest.mark.timeout(240)
def test_strides_match_truth_on_a_simulated_fleet(kafka: str, paths: Paths) -> None:
    simulate_fleet(
        kafka,
        paths,
        RUNNERS,
        DAYS,
        start=dt.date(2026, 3, 2),
        seed=SEED,
        progress=False,
        duration_scale=SCALE,
    )
    run(StreamOptions(kafka, paths, workers=1), until_idle_s=0.0, drain=True, log=lambda _: None)

    truth = pq.read_table(paths.truth / "strides.parquet")
    traits = pq.read_table(paths.truth / "runners.parquet").to_pandas().set_index("runner_id")
    got = read_table(paths.table("strides"), STRIDES)
    coverage = _foot_coverage(kafka)

    t_sess = np.asarray(truth["session_id"].to_pylist())
    t_foot = np.asarray(truth["foot"].to_pylist())
    t_ic = _us(truth["ic_device_time_us"])
    t_tc = _us(truth["tc_device_time_us"])
    t_next = t_ic + (_us(truth["next_ic_time"]) - _us(truth["ic_time"]))
    t_rec = np.asarray(truth["recorded"].to_pylist(), bool)
    g_sess = np.asarray(got["session_id"].to_pylist())
    g_foot = np.asarray(got["foot"].to_pylist())
    g_ic = _us(got["ic_time"])
    g_tc = np.asarray([-1 if v is None else v for v in got["tc_time"].cast("int64").to_pylist()], np.int64)

    eligible = ic_ok = tc_ok = phantom = 0
    misses: list[str] = []
    for s, f in sorted(set(zip(t_sess.tolist(), t_foot.tolist(), strict=True))):
        tm = (t_sess == s) & (t_foot == f)
        gm = (g_sess == s) & (g_foot == f)
        order = np.argsort(g_ic[gm])
        gic, gtc = g_ic[gm][order], g_tc[gm][order]
        tic_all = np.sort(t_ic[tm])
        for x in gic:  # phantom: no true IC (recorded or not) within 50 ms
            j = np.searchsorted(tic_all, x)
            near = [abs(int(tic_all[i]) - int(x)) for i in (j - 1, j) if 0 <= i < len(tic_all)]
            phantom += not near or min(near) > 50_000
        iv = coverage.get((s, f))
        for ic, tc, nx, rec in zip(t_ic[tm], t_tc[tm], t_next[tm], t_rec[tm], strict=True):
            if not rec or not _covered(iv, int(ic) - PRE_US, int(nx) + POST_US):
                continue
            eligible += 1
            j = np.searchsorted(gic, ic)
            cand = [i for i in (j - 1, j) if 0 <= i < len(gic)]
            i = min(cand, key=lambda i: abs(int(gic[i]) - int(ic))) if cand else None
            if i is not None and abs(int(gic[i]) - int(ic)) <= SAMPLE_US:
                ic_ok += 1
                tc_ok += gtc[i] >= 0 and abs(int(gtc[i]) - int(tc)) <= SAMPLE_US
            elif len(misses) < 10:
                misses.append(f"{s} {f} ic={ic}")

    assert eligible > 3000, eligible
    print(
        f"\neligible {eligible}: IC {100 * ic_ok / eligible:.2f} %, TC {100 * tc_ok / eligible:.2f} % within 5 ms"
    )
    assert ic_ok >= 0.99 * eligible, (ic_ok, eligible, misses)
    assert tc_ok >= 0.99 * eligible, (tc_ok, eligible)
    assert phantom == 0, phantom

    # per-runner EMG traits (runners with EMG strides)
    df = got.select(["runner_id", "glute_share", "glute_onset_ms", "hamstring_onset_ms"]).to_pandas()
    per = df.groupby("runner_id").mean().dropna()
    per["lag"] = per["glute_onset_ms"] - per["hamstring_onset_ms"]
    tr = traits.loc[per.index]
    under = (tr["glute_underactivation_left"] + tr["glute_underactivation_right"]) / 2
    true_share = truth.to_pandas().groupby("runner_id")["glute_share"].mean().loc[per.index]
    assert len(per) >= 6, per
    rho_share = spearmanr(per["glute_share"], -under)[0]
    rho_true = spearmanr(per["glute_share"], true_share)[0]
    rho_lag = spearmanr(per["lag"], tr["glute_onset_lag_ms"])[0]
    print(
        f"spearman: share~-underactivation {rho_share:.2f}, share~true share {rho_true:.2f}, lag {rho_lag:.2f}"
    )
    assert rho_share >= 0.75, rho_share
    assert rho_true >= 0.9, rho_true
    assert rho_lag >= 0.75, rho_lag
