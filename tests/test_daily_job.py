"""The daily Beam job end to end on a real Parquet lake: grain, reruns, late data, FIT-only runners,
the quality gate and the Dask runner."""

from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import fixtures_dir

from infra.settings import Paths
from pipelines.daily.pipeline import changed_range, partition_snapshot, run_daily, save_state
from pipelines.daily.synthetic import random_traits, tables_for_fleet
from pipelines.lake import read_table, replace_partition, write_file_atomic, write_partitioned
from schemas.daily_table import COMPONENT_NAMES, DAILY
from schemas.tables import RUNNERS, SESSIONS, WATCH_RECORDS

FIRST = dt.date(2024, 3, 1)


def write_inputs(paths: Paths, tables: dict[str, pa.Table]) -> None:
    for name in ("strides", "watch_records", "sessions"):
        if name in tables and tables[name].num_rows:
            write_partitioned(tables[name], paths.table(name), ["date"], "part-0.parquet")
    write_file_atomic(tables["runners"], paths.table("runners") / "part-0.parquet")


def daily(paths: Paths) -> pa.Table:
    return read_table(paths.table("daily"), DAILY).sort_by(
        [("date", "ascending"), ("runner_id", "ascending")]
    )


@pytest.fixture
def fleet_lake(paths: Paths) -> Paths:
    write_inputs(
        paths, tables_for_fleet(random_traits(3, seed=2), FIRST, 21, stride_every=6, minutes=(20, 45))
    )
    return paths


def test_grain_rest_days_and_rerun_idempotence(fleet_lake: Paths) -> None:
    paths = fleet_lake
    res = run_daily(paths, dt.date(2024, 3, 10), dt.date(2024, 3, 21))
    assert not res.blocked and len(res.dates) == 12
    t = daily(paths)
    assert t.num_rows == 3 * 12  # every runner every date, rest days included
    df = t.to_pandas()
    assert not df.duplicated(["runner_id", "date"]).any()
    rest = df[df["rest_day"]]
    assert len(rest) > 0 and (rest["trimp_banister"] == 0).all() and (rest["distance_m"] == 0).all()
    assert (rest["compensation_components_available"] == 0).all() and rest["compensation_score"].isna().all()
    runs = df[~df["rest_day"]]
    assert (runs["trimp_banister"] > 0).all()
    # fatigue drift needs a long run (>= 40 min); the other seven components are always there
    long_run = runs["duration_s"] >= 2400
    assert (runs["fatigue_drift_computable"] == long_run).all()
    assert (runs["compensation_components_available"] == 7 + long_run.astype(int)).all()
    assert (runs["hr_params_source"] == "profile").all()
    before = {p: p.read_bytes() for p in sorted(paths.table("daily").rglob("*.parquet"))}
    run_daily(paths, dt.date(2024, 3, 10), dt.date(2024, 3, 21))
    after = {p: p.read_bytes() for p in sorted(paths.table("daily").rglob("*.parquet"))}
    assert before.keys() == after.keys() and daily(paths).equals(t)
    assert before == after  # same bytes
    # a single-date run reproduces the same row as the range run (rolling values from the lookback)
    run_daily(paths, dt.date(2024, 3, 15), dt.date(2024, 3, 15))
    assert daily(paths).equals(t)


def test_late_data_recomputes_affected_and_later_days(fleet_lake: Paths) -> None:
    paths = fleet_lake
    snap = partition_snapshot(paths)
    run_daily(paths, dt.date(2024, 3, 1), dt.date(2024, 3, 21))
    save_state(paths, snap, dt.date(2024, 3, 1), dt.date(2024, 3, 21))
    assert changed_range(paths) is None
    before = daily(paths).to_pandas().set_index(["runner_id", "date"])
    # a late session for r0000 arrives for 2024-03-05 (UTC noon; Copenhagen local date 03-05)
    late = tables_for_fleet(random_traits(1, seed=2), dt.date(2024, 3, 5), 1, run_probability=1.1, seed=99)
    sessions = late["sessions"].filter(pc.equal(late["sessions"]["runner_id"], "r0000"))
    sid = "late-session"
    for name, t in (("sessions", sessions), ("watch_records", late["watch_records"])):
        t = t.set_column(t.schema.get_field_index("session_id"), "session_id", pa.array([sid] * t.num_rows))
        write_file_atomic(t.drop_columns(["date"]), paths.table(name) / "date=2024-03-05" / "late-0.parquet")
    rng = changed_range(paths)
    assert rng == (dt.date(2024, 3, 4), dt.date(2024, 3, 22))
    run_daily(paths, *rng)
    after = daily(paths).to_pandas().set_index(["runner_id", "date"])
    d5 = dt.date(2024, 3, 5)
    assert after.loc[("r0000", d5), "sessions"] == before.loc[("r0000", d5), "sessions"] + 1
    later = after.loc["r0000"].loc[dt.date(2024, 3, 12), "chronic_load_trimp"]
    assert later > before.loc["r0000"].loc[dt.date(2024, 3, 12), "chronic_load_trimp"]
    # recomputing only the changed range equals a full recompute
    full = Paths(paths.root.parent / "full").ensure()
    for sub in ("strides", "watch_records", "sessions", "runners"):
        os.symlink(paths.table(sub), full.lake / sub) if full.lake.exists() else (
            full.lake.mkdir(parents=True),
            os.symlink(paths.table(sub), full.lake / sub),
        )
    run_daily(full, dt.date(2024, 3, 1), dt.date(2024, 3, 21))
    ref = daily(full).to_pandas().set_index(["runner_id", "date"])
    common = ref.index.intersection(after.index)
    assert len(common) == len(ref)
    np.testing.assert_allclose(
        ref.loc[common, "chronic_load_trimp"].to_numpy(), after.loc[common, "chronic_load_trimp"].to_numpy()
    )


def _fit_tables(path: str, runner_id: str) -> dict[str, pa.Table]:
    """Watch records + session markers from a real FIT file (garmin_fit_sdk), as the stream job would write."""
    from garmin_fit_sdk import Decoder, Stream

    messages, errors = Decoder(Stream.from_file(path)).read()
    assert not errors
    recs = messages["record_mesgs"]
    sess = messages["session_mesgs"][0]
    sid = f"{runner_id}-fit"

    def col(key: str, scale: float = 1.0) -> list:
        return [None if r.get(key) is None else float(r[key]) * scale for r in recs]

    ts = [r["timestamp"] for r in recs]
    cadence = [
        None if r.get("cadence") is None else 2.0 * (r["cadence"] + (r.get("fractional_cadence") or 0.0))
        for r in recs
    ]
    watch = {
        "runner_id": [runner_id] * len(recs),
        "device_id": ["fit-device"] * len(recs),
        "session_id": [sid] * len(recs),
        "seq": list(range(len(recs))),
        "timestamp": ts,
        "heart_rate_bpm": [r.get("heart_rate") for r in recs],
        "speed_m_s": col("enhanced_speed"),
        "distance_m": col("distance"),
        "cadence_spm": cadence,
        "ground_contact_time_ms": col("stance_time"),
        "ground_contact_balance_left_pct": col("stance_time_balance"),
        "vertical_oscillation_mm": col("vertical_oscillation"),
        "vertical_ratio_pct": col("vertical_ratio"),
        "step_length_mm": col("step_length"),
        "power_w": [None] * len(recs),
        "altitude_m": col("enhanced_altitude"),
        "developer_fields": [None] * len(recs),
        "date": [t.date() for t in ts],
    }
    start = sess["start_time"]
    end = start + dt.timedelta(seconds=float(sess["total_elapsed_time"]))
    markers = {
        "runner_id": [runner_id] * 2,
        "device_id": ["fit-device"] * 2,
        "session_id": [sid] * 2,
        "seq": [0, 1],
        "timestamp": [start, end],
        "marker": ["start", "end"],
        "source": ["fit"] * 2,
        "sport": [str(sess.get("sport"))] * 2,
        "sub_sport": [None] * 2,
        "sensors": ["watch"] * 2,
        "total_elapsed_s": [None, float(sess["total_elapsed_time"])],
        "total_distance_m": [None, float(sess["total_distance"])],
        "avg_heart_rate_bpm": [None] * 2,
        "avg_cadence_spm": [None] * 2,
        "date": [start.date(), end.date()],
    }
    runners = {
        "runner_id": [runner_id],
        "cohort": ["fit"],
        "sex": ["male"],
        "birth_year_band": ["1980-1989"],
        "time_zone": ["Europe/Berlin"],
        "resting_hr_bpm": [None],
        "max_hr_bpm": [None],
        "updated_at": [dt.datetime(2015, 1, 1, tzinfo=dt.UTC)],
        "profile_seq": [1],
    }
    return {
        "watch_records": pa.Table.from_pydict(watch, schema=WATCH_RECORDS),
        "sessions": pa.Table.from_pydict(markers, schema=SESSIONS),
        "runners": pa.Table.from_pydict(runners, schema=RUNNERS),
    }


@pytest.mark.fixtures
def test_fit_only_runner_gets_load_cadence_asymmetry_and_no_emg(paths: Paths) -> None:
    fit = fixtures_dir("fit") / "garmin-fenix-5-run.fit"
    write_inputs(paths, _fit_tables(str(fit), "fit-runner"))
    day = dt.date(2017, 6, 11)
    res = run_daily(paths, day, day)
    assert not res.blocked, res.blocked
    row = daily(paths).to_pylist()[0]
    assert row["sessions"] == 1 and row["distance_m"] == pytest.approx(157.56)
    assert row["trimp_banister"] > 0 and row["hr_params_source"] == "estimated"
    assert row["steps_source"] == "watch_cadence" and row["steps"] > 0
    assert row["cadence_spm"] > 150
    assert row["asymmetry_computable"] and row["asymmetry_sensors"] == "watch"
    assert row["asymmetry_raw"] == pytest.approx(4 * abs(row["asymmetry_gct_si_pct"] / 4), rel=1e-9)
    assert row["asymmetry_raw"] > 0
    for c in (
        "glute_deficit",
        "calf_dominance",
        "hamstring_dominance",
        "recruitment_inversion",
        "pelvic_drop",
        "overstride",
    ):
        assert row[f"{c}_computable"] is False
        assert row[f"{c}_raw"] is None and row[f"{c}_points"] is None  # NULL, never 0
    assert row["impact_load_g"] is None  # no foot IMU: unknown, not 0
    assert row["compensation_components_available"] == sum(row[f"{c}_computable"] for c in COMPONENT_NAMES)


@pytest.mark.fixtures
def test_fit_long_run_gets_fatigue_drift_from_watch(paths: Paths) -> None:
    fit = fixtures_dir("fit") / "activity-small-fenix2-run.fit"
    write_inputs(paths, _fit_tables(str(fit), "fit-runner"))
    day = dt.date(2015, 8, 15)
    run_daily(paths, day, day)
    row = daily(paths).to_pylist()[0]
    assert row["duration_s"] == pytest.approx(2832.0)
    assert row["fatigue_drift_computable"] and row["fatigue_drift_sensors"] == "watch"
    assert not row["asymmetry_computable"]  # this older watch records no GCT balance


def test_quality_gate_blocks_corrupted_input(fleet_lake: Paths) -> None:
    paths = fleet_lake
    day_dir = paths.table("sessions") / "date=2024-03-12"
    sessions = read_table(paths.table("sessions"), SESSIONS).to_pandas()
    sessions = sessions[sessions["date"] == dt.date(2024, 3, 12)].copy()
    sessions.loc[sessions["marker"] == "end", "total_distance_m"] = -5_000.0  # corrupted totals
    replace_partition(
        pa.Table.from_pandas(sessions, schema=SESSIONS, preserve_index=False),
        paths.table("sessions"),
        {"date": dt.date(2024, 3, 12)},
    )
    assert day_dir.exists()
    res = run_daily(paths, dt.date(2024, 3, 11), dt.date(2024, 3, 13))
    blocked = {b["date"] for b in res.blocked}
    assert "2024-03-12" in blocked and "2024-03-11" not in blocked
    assert any("distance_m" in f for f in res.blocked[0]["failures"])
    assert not (paths.table("daily") / "date=2024-03-12").exists()
    assert (paths.table("daily") / "date=2024-03-11").exists()
    result = json.loads((paths.quality / "daily" / "date=2024-03-12.json").read_text())
    assert result["published"] is False and result["validation"]["success"] is False


def test_cli_daily(fleet_lake: Paths) -> None:
    from typer.testing import CliRunner

    from jobs.cli import app

    out = CliRunner().invoke(app, ["--data-dir", str(fleet_lake.root), "daily", "--date", "2024-03-14"])
    assert out.exit_code == 0, out.output
    assert "1 dates published, 3 rows" in out.output
    out = CliRunner().invoke(app, ["--data-dir", str(fleet_lake.root), "daily", "--since-changes"])
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(app, ["--data-dir", str(fleet_lake.root), "daily", "--since-changes"])
    assert "nothing to do" in out.output
    bad = CliRunner().invoke(app, ["--data-dir", str(fleet_lake.root), "daily", "--date", "2024-13-01"])
    assert bad.exit_code != 0


@pytest.mark.slow
def test_dask_runner_matches_fnapi(fleet_lake: Paths, tmp_path) -> None:
    from distributed import LocalCluster

    paths = fleet_lake
    run_daily(paths, dt.date(2024, 3, 10), dt.date(2024, 3, 21))
    ref = daily(paths)
    for p in paths.table("daily").rglob("*.parquet"):
        p.unlink()
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        res = run_daily(
            paths,
            dt.date(2024, 3, 10),
            dt.date(2024, 3, 21),
            runner="dask",
            pipeline_args=[f"--dask_client_address={cluster.scheduler_address}"],
        )
    assert not res.blocked and len(res.dates) == 12
    assert daily(paths).equals(ref)
