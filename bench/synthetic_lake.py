"""Write a synthetic lake directly (no Kafka, no Beam): runners, daily and strides tables.

Used by the nightly benchmark (10,000 runners x 90 days, >= 50 million stride rows, cached under
``data/bench_lake``) and, small, by the nightly/catalog/report tests. Everything is vectorised numpy with
pyarrow writes, one file per date partition, zstd. Only a few stride columns vary; the rest are constant or
null so the lake stays small on disk.

Stories planted for the report and the analyst queries (deterministic for a seed):

* ~6 % of runners do a single run 15-50 % longer than their previous 30-day longest in the last 5 days;
* ~8 % show calf compensation rising 30-70 % in the last 10 days (after their spike for some);
* ~5 % show pelvic drop rising 30-60 % in the last 10 days;
* ~40 % have no EMG shorts (muscle components not computable), ~30 % no pelvis IMU.

``python -m bench.synthetic_lake --runners 200 --days 60 --strides 40 --out /tmp/lake`` writes one by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from infra.settings import Paths
from pipelines import lake
from schemas.daily_table import COMPONENT_NAMES, DAILY
from schemas.tables import RUNNERS, STRIDES

__all__ = ["LakeSpec", "ensure_lake", "write_synthetic_lake"]

COHORTS = (
    "harbour-harriers",
    "uni-track-club",
    "physio-clinic-north",
    "trail-collective",
    "city-road-runners",
    "masters-40plus",
    "parkrun-crew",
    "clinic-south-rehab",
)
EMG_COMPONENTS = (
    "glute_deficit",
    "calf_dominance",
    "hamstring_dominance",
    "recruitment_inversion",
    "fatigue_drift",
)
PELVIS_COMPONENTS = ("pelvic_drop",)
#: population reference of each component's raw value (for the synthetic points)
POP_REF = {
    "glute_deficit": 0.25,
    "calf_dominance": 0.35,
    "hamstring_dominance": 0.30,
    "recruitment_inversion": 0.25,
    "pelvic_drop": 5.0,
    "asymmetry": 4.0,
    "overstride": 8.0,
    "fatigue_drift": 6.0,
}


@dataclass(frozen=True)
class LakeSpec:
    runners: int = 10_000
    days: int = 90
    strides_per_run: int = 80  # sampled strides per runner-day with a run (both feet)
    end_date: str = "2025-06-30"
    seed: int = 7
    version: int = 2  # bump when the generator changes (invalidates cached lakes)

    @property
    def end(self) -> dt.date:
        return dt.date.fromisoformat(self.end_date)


def _ewma(x: np.ndarray, n: int) -> np.ndarray:
    lam = 2.0 / (n + 1)
    out = np.empty_like(x)
    acc = np.zeros(x.shape[0])
    for d in range(x.shape[1]):
        acc = lam * x[:, d] + (1 - lam) * acc
        out[:, d] = acc
    return out


def _runners_table(spec: LakeSpec, rng: np.random.Generator) -> tuple[pa.Table, dict[str, np.ndarray]]:
    r = spec.runners
    ids = np.array([f"r{i:05d}" for i in range(r)])
    cohort = np.array(COHORTS)[rng.integers(0, len(COHORTS), r)]
    band_start = rng.choice(np.arange(1955, 2005, 5), r)
    masters = cohort == "masters-40plus"
    band_start = np.where(masters, rng.choice(np.arange(1955, 1985, 5), r), band_start)
    sex = np.where(rng.random(r) < 0.5, "female", "male")
    updated = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    table = pa.table(
        {
            "runner_id": ids,
            "cohort": cohort,
            "sex": sex,
            "birth_year_band": [f"{b}-{b + 4}" for b in band_start],
            "time_zone": np.full(r, "Europe/Berlin"),
            "resting_hr_bpm": rng.integers(45, 65, r).astype(np.int32),
            "max_hr_bpm": rng.integers(170, 200, r).astype(np.int32),
            "updated_at": pa.array([updated] * r, type=pa.timestamp("us", tz="UTC")),
            "profile_seq": np.ones(r, dtype=np.int64),
        },
        schema=RUNNERS,
    )
    return table, {"ids": ids, "cohort": cohort, "sex": sex}


def _daily_matrices(spec: LakeSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """runners x days matrices of every generated daily measure (day index 0 = first date)."""
    r, d = spec.runners, spec.days
    base_km = rng.uniform(5, 14, r)[:, None]
    p_run = rng.uniform(0.5, 0.9, r)[:, None]
    ran = rng.random((r, d)) < p_run
    dates = [spec.end - dt.timedelta(days=d - 1 - i) for i in range(d)]
    sunday = np.array([x.weekday() == 6 for x in dates])[None, :]
    dist = np.where(ran, base_km * 1000 * rng.lognormal(0, 0.18, (r, d)) * np.where(sunday, 1.5, 1.0), 0.0)

    # story: a spike in the last 5 days
    spikers = rng.random(r) < 0.06
    spike_day = d - 1 - rng.integers(0, 5, r)
    rows = np.nonzero(spikers)[0]
    for i in rows:
        sd = spike_day[i]
        prev = dist[i, max(0, sd - 30) : sd].max(initial=0.0)
        dist[i, sd] = max(prev, 3000.0) * rng.uniform(1.15, 1.5)
        ran[i, sd] = True
    longest = dist
    prev30 = np.zeros_like(dist)
    for j in range(d):
        lo = max(0, j - 30)
        prev30[:, j] = dist[:, lo:j].max(axis=1) if j > lo else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        spike_ratio = np.where((longest > 0) & (prev30 > 0), longest / prev30, np.nan)

    speed = rng.uniform(2.6, 3.8, r)[:, None]
    duration = np.where(ran, dist / speed, 0.0)
    trimp = duration / 60.0 * rng.uniform(1.2, 2.0, r)[:, None]
    acute, chronic = _ewma(trimp, 7), _ewma(trimp, 28)
    with np.errstate(divide="ignore", invalid="ignore"):
        acwr = np.where(chronic > 0, acute / chronic, np.nan)
    weekly = np.stack([trimp[:, max(0, j - 6) : j + 1].sum(axis=1) for j in range(d)], axis=1)
    sd7 = np.stack([trimp[:, max(0, j - 6) : j + 1].std(axis=1) for j in range(d)], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        monotony = np.where(sd7 > 0, (weekly / 7.0) / sd7, np.nan)
    cadence = np.where(ran, rng.normal(170, 7, r)[:, None] + rng.normal(0, 1.5, (r, d)), np.nan)

    has_emg = rng.random(r) >= 0.4
    has_pelvis = rng.random(r) >= 0.3
    out = {
        "ran": ran,
        "distance_m": dist,
        "duration_s": duration,
        "longest_run_m": longest,
        "longest_run_prev30d_m": prev30,
        "spike_ratio": spike_ratio,
        "trimp_banister": trimp,
        "acute_load_trimp": acute,
        "chronic_load_trimp": chronic,
        "acwr": acwr,
        "weekly_load_trimp": weekly,
        "monotony_7d": monotony,
        "strain_7d": weekly * monotony,
        "cadence_spm": cadence,
        "impact_load_g": np.where(ran, dist / 1.2 * rng.uniform(2.0, 3.5, r)[:, None], 0.0),
        "strides": np.where(ran, np.round(dist / 2.4), 0),
        "has_emg": has_emg,
        "has_pelvis": has_pelvis,
    }
    # compensation components: runner level x day noise, with planted rises in the last 10 days
    recent = np.arange(d)[None, :] >= d - 10
    calf_rise = (rng.random(r) < 0.08)[:, None] & recent
    drop_rise = (rng.random(r) < 0.05)[:, None] & recent
    points = []
    for c in COMPONENT_NAMES:
        level = POP_REF[c] * rng.lognormal(0, 0.3, r)[:, None]
        raw = level * rng.lognormal(0, 0.08, (r, d))
        if c == "calf_dominance":
            raw = np.where(calf_rise, raw * rng.uniform(1.3, 1.7, r)[:, None], raw)
        if c == "pelvic_drop":
            raw = np.where(drop_rise, raw * rng.uniform(1.3, 1.6, r)[:, None], raw)
        ok = ran.copy()
        if c in EMG_COMPONENTS:
            ok &= has_emg[:, None]
        if c in PELVIS_COMPONENTS:
            ok &= has_pelvis[:, None]
        raw = np.where(ok, raw, np.nan)
        pts = np.where(ok, np.clip(50 * (raw / POP_REF[c] - 1) + 30, 0, 100), np.nan)
        out[f"{c}_raw"], out[f"{c}_points"], out[f"{c}_computable"] = raw, pts, ok
        points.append(pts)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out["compensation_score"] = np.nanmean(np.stack(points), axis=0)
    out["compensation_components_available"] = np.stack(
        [out[f"{c}_computable"] for c in COMPONENT_NAMES]
    ).sum(axis=0)
    gct_si = np.abs(rng.normal(0, 2.5, r))[:, None] + rng.normal(0, 0.4, (r, d))
    out["asymmetry_gct_si_pct"] = np.where(ran, np.abs(gct_si), np.nan)
    out["asymmetry_glute_si_pct"] = np.where(
        ran & has_emg[:, None], np.abs(3 * gct_si + rng.normal(0, 2, (r, d))), np.nan
    )
    out["glute_share_median"] = np.where(
        ran & has_emg[:, None], np.clip(0.42 - 0.3 * (out["glute_deficit_raw"] - 0.25), 0.1, 0.8), np.nan
    )
    return out


def _daily_table(
    m: dict[str, np.ndarray], j: int, ids: np.ndarray, cohort: np.ndarray, sex: np.ndarray
) -> pa.Table:
    r = len(ids)
    ran = m["ran"][:, j]
    cols: dict[str, pa.Array] = {}
    for f in DAILY:
        if f.name == "date":
            continue
        if f.name == "runner_id":
            v = ids
        elif f.name == "cohort":
            v = cohort
        elif f.name == "sex":
            v = sex
        elif f.name == "time_zone":
            v = np.full(r, "Europe/Berlin")
        elif f.name == "rest_day":
            v = ~ran
        elif f.name == "sessions":
            v = ran.astype(np.int32)
        elif f.name == "schema_version":
            v = np.ones(r, dtype=np.int32)
        elif f.name == "spike_flag":
            sr = m["spike_ratio"][:, j]
            v = pa.array(np.where(np.isfinite(sr), sr > 1.10, False), mask=~np.isfinite(sr))
        elif f.name == "steps":
            v = (m["strides"][:, j] * 2).astype(np.int64)
        elif f.name == "steps_source":
            v = np.where(ran, "strides", None)
        elif f.name.endswith("_sensors") and f.name != "compensation_sensors":
            v = pa.nulls(r, f.type)
        elif f.name in m:
            v = m[f.name][:, j]
            if pa.types.is_floating(f.type):
                v = pa.array(v.astype(float), mask=~np.isfinite(v.astype(float)), type=f.type)
            elif pa.types.is_boolean(f.type):
                v = v.astype(bool)
            else:
                v = v.astype(np.int64 if f.type == pa.int64() else np.int32)
        else:
            v = pa.nulls(r, f.type) if f.nullable else pa.array(np.zeros(r), type=f.type)
        cols[f.name] = pa.array(v, type=f.type) if not isinstance(v, pa.Array) else v.cast(f.type)
    schema = pa.schema([f for f in DAILY if f.name != "date"])
    return pa.table(cols, schema=schema)


_STRIDE_CONST = {
    "sensors": "foot_imu,pelvis_imu,emg",
}


def _strides_table(
    m: dict[str, np.ndarray], j: int, date: dt.date, ids: np.ndarray, per_run: int, rng: np.random.Generator
) -> pa.Table:
    ran = m["ran"][:, j]
    who = np.nonzero(ran)[0]
    n = len(who) * per_run
    rid_idx = np.repeat(who, per_run)
    k = np.tile(np.arange(per_run), len(who))
    foot_idx = k % 2
    start_us = int(dt.datetime(date.year, date.month, date.day, 6, tzinfo=dt.UTC).timestamp() * 1e6)
    start_us += (rid_idx % 3600) * 4_000_000  # sessions spread over the morning
    stride_s = 0.72 + rng.normal(0, 0.02, n)
    ic_us = start_us + (k // 2 * 720_000 + foot_idx * 360_000).astype(np.int64)
    rid = pa.DictionaryArray.from_arrays(pa.array(rid_idx.astype(np.int32)), pa.array(ids)).cast(pa.string())
    session = pc.binary_join_element_wise(rid, pa.scalar(date.isoformat()), "-")
    foot = pa.DictionaryArray.from_arrays(
        pa.array(foot_idx.astype(np.int8)), pa.array(["left", "right"])
    ).cast(pa.string())
    stride_id = pc.binary_join_element_wise(session, foot, pa.array(ic_us).cast(pa.string()), ":")
    cad = m["cadence_spm"][rid_idx, j] + rng.normal(0, 2.0, n)
    emg = m["has_emg"][rid_idx]
    pelvis = m["has_pelvis"][rid_idx]
    gshare = np.where(emg, m["glute_share_median"][rid_idx, j] + rng.normal(0, 0.03, n), np.nan)
    drop = np.where(pelvis, m["pelvic_drop_raw"][rid_idx, j] if "pelvic_drop_raw" in m else 5.0, np.nan)
    drop = np.where(pelvis & ~np.isfinite(drop), 5.0, drop) + rng.normal(0, 0.5, n)
    ts = pa.timestamp("us", tz="UTC")

    def f64(x: np.ndarray) -> pa.Array:
        return pa.array(x, mask=~np.isfinite(x), type=pa.float64())

    cols = {
        "runner_id": rid,
        "session_id": session,
        "foot": foot,
        "stride_id": stride_id,
        "ic_time": pa.array(ic_us, type=ts),
        "tc_time": pa.array(ic_us + 250_000, type=ts),
        "next_ic_time": pa.array(ic_us + (stride_s * 1e6).astype(np.int64), type=ts),
        "session_elapsed_s": f64((k // 2) * 0.72),
        "stride_time_s": f64(np.round(stride_s, 3)),
        "cadence_spm": f64(np.round(cad, 1)),
        "ground_contact_time_ms": f64(np.round(250 + rng.normal(0, 12, n), 0)),
        "swing_time_ms": f64(np.round(470 + rng.normal(0, 12, n), 0)),
        "duty_factor": f64(np.round(0.35 + rng.normal(0, 0.01, n), 3)),
        "peak_impact_m_s2": f64(np.round(28 + rng.normal(0, 3, n), 1)),
        "foot_strike_angle_deg": f64(np.round(8 + rng.normal(0, 3, n), 1)),
        "pelvic_drop_deg": f64(np.round(drop, 1)),
        "glute_share": f64(np.round(np.clip(gshare, 0, 1), 3)),
        "recruitment_inverted": pa.array(np.where(emg, rng.random(n) < 0.2, False), mask=~emg),
        "quality_ok": pa.array(np.ones(n, dtype=bool)),
    }
    out = {}
    for f in STRIDES:
        if f.name == "date":
            continue
        if f.name in cols:
            out[f.name] = cols[f.name].cast(f.type)
        elif f.name in _STRIDE_CONST:
            out[f.name] = pa.array(np.full(n, _STRIDE_CONST[f.name]), type=f.type)
        else:
            out[f.name] = pa.nulls(n, f.type)
    return pa.table(out, schema=pa.schema([f for f in STRIDES if f.name != "date"]))


def write_synthetic_lake(paths: Paths, spec: LakeSpec = LakeSpec(), progress: bool = False) -> dict:
    """Write runners, daily and strides for ``spec`` under ``paths.lake``; returns row counts and timings."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(spec.seed)
    runners, info = _runners_table(spec, rng)
    lake.write_file_atomic(runners, paths.table("runners") / "part-0.parquet", sort_by=["runner_id"])
    m = _daily_matrices(spec, rng)
    dates = [spec.end - dt.timedelta(days=spec.days - 1 - i) for i in range(spec.days)]
    n_daily = n_strides = 0
    for j, date in enumerate(dates):
        daily = _daily_table(m, j, info["ids"], info["cohort"], info["sex"])
        lake.replace_partition(daily, paths.table("daily"), {"date": date})
        n_daily += daily.num_rows
        if spec.strides_per_run > 0:
            strides = _strides_table(m, j, date, info["ids"], spec.strides_per_run, rng)
            pdir = lake.partition_dir(paths.table("strides"), {"date": date})
            lake.write_file_atomic(strides, pdir / "part-0.parquet")
            n_strides += strides.num_rows
        if progress and (j % 10 == 9 or j == len(dates) - 1):
            print(
                f"  {j + 1}/{len(dates)} days, {n_strides:,} strides, {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    return {
        "runners": spec.runners,
        "daily_rows": n_daily,
        "stride_rows": n_strides,
        "seconds": round(time.perf_counter() - t0, 1),
        "spec": asdict(spec),
    }


def _schemas_fingerprint() -> str:
    """Hash of the table schemas the lake is written with: a cached lake from before a column was added
    (strides gained hamstring_share/calf_share) is rewritten, not queried for a missing column."""
    import hashlib

    return hashlib.sha1("|".join(str(s) for s in (RUNNERS, DAILY, STRIDES)).encode()).hexdigest()[:16]


def ensure_lake(root: Path, spec: LakeSpec = LakeSpec(), progress: bool = True) -> tuple[Paths, dict]:
    """The cached lake under ``root`` for ``spec`` (written once; a marker file records the spec)."""
    paths = Paths(root).ensure()
    marker = root / "synthetic_lake.json"
    if marker.exists():
        meta = json.loads(marker.read_text())
        if meta.get("spec") == asdict(spec) and meta.get("schemas") == _schemas_fingerprint():
            return paths, meta
    for sub in ("runners", "daily", "strides", "injury_risk"):
        d = paths.table(sub)
        if d.exists():
            import shutil

            shutil.rmtree(d)
    meta = {**write_synthetic_lake(paths, spec, progress=progress), "schemas": _schemas_fingerprint()}
    marker.write_text(json.dumps(meta, indent=2))
    return paths, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runners", type=int, default=LakeSpec.runners)
    ap.add_argument("--days", type=int, default=LakeSpec.days)
    ap.add_argument("--strides", type=int, default=LakeSpec.strides_per_run)
    ap.add_argument("--end", default=LakeSpec.end_date)
    ap.add_argument("--out", default="data/bench_lake")
    a = ap.parse_args()
    spec = LakeSpec(a.runners, a.days, a.strides, a.end)
    _, meta = ensure_lake(Path(a.out).resolve(), spec)
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
