"""Read what the nightly job needs from the lake, mapped onto the names :mod:`pipelines.science.risk` uses.

The ``daily`` table (one row per runner per local date) is the main input. Its column names are
reconciled here in one place (:data:`DAILY_CANDIDATES`): the first candidate present wins. Metrics the
daily table does not carry (cadence, impact, pelvic drop, foot-strike angle) fall back to per-day
aggregates of the ``strides`` table, computed with DuckDB over only the partitions in the window.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from infra.settings import Paths
from pipelines import lake
from pipelines.lake import partition_key
from schemas.daily_table import COMPONENT_NAMES

__all__ = ["DAILY_CANDIDATES", "load_daily_window", "load_runners", "load_sensors_worn", "partition_key"]

#: the daily table's compensation components, plus lumbar (no sensor yet: always "not measured")
COMPONENTS = (*COMPONENT_NAMES, "lumbar_compensation")


def _component_candidates(c: str) -> list[str]:
    return [f"comp_{c}_raw", f"{c}_raw", f"compensation_{c}_raw", f"comp_{c}", f"{c}_value", c]


def _computable_candidates(c: str) -> list[str]:
    return [f"comp_{c}_computable", f"{c}_computable", f"compensation_{c}_computable"]


#: canonical name -> daily column candidates (first present wins)
DAILY_CANDIDATES: dict[str, list[str]] = {
    "distance_m": ["distance_m", "total_distance_m"],
    "duration_s": ["duration_s", "total_duration_s"],
    "cohort": ["cohort"],
    "strides": ["strides"],
    "impact_load_g": ["impact_load_g"],
    "prev30_longest_run_m": ["longest_run_prev30d_m", "prev30_longest_run_m"],
    "spike_ratio": ["spike_ratio"],
    "longest_run_m": [
        "longest_run_m",
        "longest_session_m",
        "longest_session_distance_m",
        "max_session_distance_m",
    ],
    "acute_load": ["acute_load_trimp", "acute_load_ewma", "acute_ewma", "acute_load", "atl_ewma"],
    "chronic_load": ["chronic_load_trimp", "chronic_load_ewma", "chronic_ewma", "chronic_load", "ctl_ewma"],
    "trimp": ["trimp_banister", "trimp"],
    "acwr": ["acwr", "acwr_ewma", "acute_chronic_ratio"],
    "compensation_score": ["compensation_score", "comp_score"],
    "cadence_spm": ["cadence_spm", "mean_cadence_spm", "cadence_spm_mean", "median_cadence_spm"],
    "impact_loading": ["peak_impact_m_s2", "mean_peak_impact_m_s2", "peak_impact_m_s2_mean", "impact_m_s2"],
    "glute_share": ["glute_share_median", "glute_share", "glute_share_mean", "mean_glute_share"],
    **{c: _component_candidates(c) for c in COMPONENTS},
    **{f"{c}_computable": _computable_candidates(c) for c in COMPONENTS},
}

#: strides fallbacks: canonical metric -> SQL aggregate over one runner-day of strides
STRIDE_FALLBACKS: dict[str, str] = {
    "cadence_spm": "median(cadence_spm)",
    "impact_loading": "avg(peak_impact_m_s2)",
    "pelvic_drop": "avg(pelvic_drop_deg)",
    "overstride": "avg(greatest(foot_strike_angle_deg, 0))",
    "glute_share": "avg(glute_share)",
}


def _has_files(table_dir: Path) -> bool:
    return table_dir.exists() and any(table_dir.glob("*/*.parquet"))


def load_daily_window(paths: Paths, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Daily rows with ``local_date`` in ``[start, end]``, canonical column names (see module doc)."""
    tdir = paths.table("daily")
    canon_cols = ["runner_id", "local_date", *DAILY_CANDIDATES]
    if not _has_files(tdir):
        return pd.DataFrame({c: pd.Series(dtype="object") for c in canon_cols})
    key = partition_key(tdir) or "date"
    dset = lake.dataset(tdir, None, (key,))
    names = set(dset.schema.names)
    rename: dict[str, str] = {}
    for canon, cands in DAILY_CANDIDATES.items():
        for cand in cands:
            if cand in names:
                rename[cand] = canon
                break
    date_col = "local_date" if "local_date" in names else key
    part_filter = (ds.field(key) >= start.isoformat()) & (ds.field(key) <= end.isoformat())
    cols = sorted({"runner_id", date_col, *rename})
    table = dset.to_table(columns=cols, filter=part_filter)  # partition pruning: only the window's folders
    table = table.rename_columns(
        [rename.get(c, "local_date" if c == date_col else c) for c in table.column_names]
    )
    if "impact_loading" not in table.column_names and {"impact_load_g", "strides"} <= set(table.column_names):
        # mean peak impact per stride (g): the daily sum over its stride count
        n = pc.cast(table["strides"], pa.float64())
        n = pc.if_else(pc.greater(n, 0), n, pa.scalar(None, pa.float64()))
        table = table.append_column(
            "impact_loading", pc.divide(pc.cast(table["impact_load_g"], pa.float64()), n)
        )
    table = table.set_column(
        table.column_names.index("local_date"), "local_date", pc.cast(table["local_date"], pa.date32())
    )
    df = table.to_pandas(date_as_object=True)
    missing = [m for m in STRIDE_FALLBACKS if m not in df.columns]
    if missing:
        agg = _stride_daily(paths, start, end, missing)
        if agg is not None and len(agg):
            df = df.drop(columns=[m for m in missing if m in df.columns]).merge(
                agg, on=["runner_id", "local_date"], how="left"
            )
    for c in canon_cols:
        if c not in df.columns:
            df[c] = pd.Series(dtype="float64") if c != "runner_id" else pd.Series(dtype="object")
    return df.reset_index(drop=True)


def _stride_daily(paths: Paths, start: dt.date, end: dt.date, metrics: list[str]) -> pd.DataFrame | None:
    """Per runner-day stride aggregates (UTC date of the stride) for the metrics daily lacks."""
    tdir = paths.table("strides")
    if not _has_files(tdir):
        return None
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    files = [str(p) for d in days for p in sorted((tdir / f"date={d.isoformat()}").glob("*.parquet"))]
    if not files:
        return None
    con = duckdb.connect()
    try:
        cols = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [files[:1]]).fetchall()
        have = {c[0] for c in cols}
        need = {
            "cadence_spm": "cadence_spm",
            "impact_loading": "peak_impact_m_s2",
            "pelvic_drop": "pelvic_drop_deg",
            "overstride": "foot_strike_angle_deg",
            "glute_share": "glute_share",
        }
        exprs = [f"{STRIDE_FALLBACKS[m]} AS {m}" for m in metrics if need[m] in have]
        if not exprs:
            return None
        qual = "WHERE quality_ok" if "quality_ok" in have else ""
        sql = (
            f"SELECT runner_id, CAST(date AS DATE) AS local_date, {', '.join(exprs)} "
            f"FROM read_parquet(?, hive_partitioning=true, hive_types={{'date': DATE}}) {qual} "
            "GROUP BY ALL"
        )
        out = con.execute(sql, [files]).df()
    finally:
        con.close()
    out["local_date"] = pd.to_datetime(out["local_date"]).dt.date
    return out


def load_runners(paths: Paths) -> pd.DataFrame:
    """Latest profile per runner: ``runner_id``, ``cohort`` (plus demographics when present)."""
    tdir = paths.table("runners")
    if not tdir.exists() or not any(tdir.rglob("*.parquet")):
        return pd.DataFrame({"runner_id": pd.Series(dtype="object"), "cohort": pd.Series(dtype="object")})
    key = partition_key(tdir)
    dset = lake.dataset(tdir, None, (key,) if key else ())
    table = dset.to_table()
    if "profile_seq" in table.column_names:
        table = table.sort_by([("runner_id", "ascending"), ("profile_seq", "descending")])
    df = table.to_pandas().drop_duplicates("runner_id", keep="first")
    return df.reset_index(drop=True)


def load_sensors_worn(paths: Paths, start: dt.date, end: dt.date) -> dict[str, set[str]]:
    """Sensor kinds each runner's sessions declared (start markers' ``sensors``) in ``[start, end]``."""
    tdir = paths.table("sessions")
    if not _has_files(tdir):
        return {}
    key = partition_key(tdir) or "date"
    dset = lake.dataset(tdir, None, (key,))
    if "sensors" not in dset.schema.names:
        return {}
    flt = (ds.field(key) >= start.isoformat()) & (ds.field(key) <= end.isoformat())
    table = dset.to_table(columns=["runner_id", "sensors"], filter=flt & ds.field("sensors").is_valid())
    out: dict[str, set[str]] = {}
    for rid, sensors in zip(table["runner_id"].to_pylist(), table["sensors"].to_pylist(), strict=True):
        out.setdefault(rid, set()).update(x.strip() for x in sensors.split(",") if x.strip())
    return out
