"""The nightly job end to end on a small synthetic lake: risk -> quality -> publish -> catalog -> report."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is not an installed package

from bench.synthetic_lake import LakeSpec, write_synthetic_lake  # noqa: E402
from infra.settings import Paths  # noqa: E402
from pipelines import lake  # noqa: E402
from pipelines.nightly.job import QualityGateFailed, run_nightly  # noqa: E402
from schemas.risk_table import INJURY_RISK  # noqa: E402
from schemas.tables import STRIDES  # noqa: E402

D = dt.date(2025, 6, 30)
SPEC = LakeSpec(runners=80, days=60, strides_per_run=12, end_date=D.isoformat(), seed=3)


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    paths = Paths(tmp_path_factory.mktemp("nightly") / "data").ensure()
    write_synthetic_lake(paths, SPEC)
    return paths


@pytest.fixture(scope="module")
def night(small_lake: Paths):
    return run_nightly(small_lake, D)


def test_risk_partition_matches_contract(small_lake: Paths, night) -> None:
    path = small_lake.table("injury_risk") / f"date={D}" / "part-0.parquet"
    assert night.risk_path == path and path.exists()
    stored = pq.read_table(path)
    assert stored.schema.names == [f.name for f in INJURY_RISK if f.name != "date"]
    table = lake.read_table(small_lake.table("injury_risk"), INJURY_RISK)
    assert table.schema == INJURY_RISK
    assert table.num_rows == SPEC.runners == night.runners
    assert len(set(table["runner_id"].to_pylist())) == table.num_rows  # grain: runner x report date
    levels = table["risk_level"].to_pylist()
    assert set(levels) <= {"low", "elevated", "high"}
    assert night.levels["elevated"] + night.levels["high"] > 0  # the planted spikes are found
    rows = table.to_pylist()
    for r in rows:
        assert 0 <= r["risk_score"] <= 100
        if r["risk_level"] != "low":
            assert r["drivers"] and r["reasons"] and r["top_driver"] == r["drivers"][0]["driver"]
            assert r["drivers"][0]["grade"] in {"strong", "moderate", "weak", "contested"}


def test_planted_spikes_are_strong_drivers(small_lake: Paths, night) -> None:
    daily = lake.read_table(small_lake.table("daily"), None, columns=["runner_id", "spike_ratio", "date"])
    recent = [
        r
        for r in daily.to_pylist()
        if r["date"] >= str(D - dt.timedelta(days=1)) and (r["spike_ratio"] or 0) > 1.15
    ]
    assert recent, "the synthetic lake plants spikes in the last days"
    risk = {
        r["runner_id"]: r for r in lake.read_table(small_lake.table("injury_risk"), INJURY_RISK).to_pylist()
    }
    for r in recent:
        got = risk[r["runner_id"]]
        assert got["points_distance_spike"] > 0
        assert got["risk_level"] in {"elevated", "high"}


def test_reports_written_per_cohort(small_lake: Paths, night) -> None:
    out = small_lake.reports / D.isoformat()
    assert night.reports and all(p.parent == out for p in night.reports)
    cohorts = {p.stem for p in night.reports}
    for stem in cohorts:
        assert (out / f"{stem}.csv").exists() and (out / f"{stem}.parquet").exists()
    html = night.reports[0].read_text()
    assert "data:image/png;base64," in html and "<script" not in html
    assert "Data quality" in html and "injury_risk" in html
    total = sum(pq.read_table(out / f"{s}.parquet").num_rows for s in cohorts)
    assert total == SPEC.runners
    assert (small_lake.quality / "data_docs" / "index.html").exists()
    assert night.quality.success and {r.suite for r in night.quality.results} >= {"strides", "injury_risk"}


def test_rerun_is_idempotent(small_lake: Paths, night) -> None:
    before = pq.read_table(night.risk_path)
    again = run_nightly(small_lake, D, report=False, data_docs=False)
    files = list((small_lake.table("injury_risk") / f"date={D}").glob("*.parquet"))
    assert files == [night.risk_path]
    assert pq.read_table(again.risk_path).equals(before)


def test_failed_suite_blocks_publishing(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "data").ensure()
    write_synthetic_lake(
        paths, LakeSpec(runners=20, days=40, strides_per_run=6, end_date=D.isoformat(), seed=5)
    )
    # corrupt the report date's strides: an impossible foot value
    pfile = paths.table("strides") / f"date={D}" / "part-0.parquet"
    t = pq.read_table(pfile)
    feet = t["foot"].to_pylist()
    feet[0] = "middle"
    t = t.set_column(t.schema.get_field_index("foot"), "foot", pa.array(feet))
    lake.write_file_atomic(t.cast(pa.schema([f for f in STRIDES if f.name != "date"])), pfile)
    with pytest.raises(QualityGateFailed) as err:
        run_nightly(paths, D)
    assert any("foot" in f and "middle" in f for f in err.value.summary.failures())
    assert not (paths.table("injury_risk") / f"date={D}").exists()
    assert not (paths.reports / D.isoformat()).exists()
    assert (paths.quality / "results" / f"nightly-{D}.json").exists()  # a readable result is left


def test_cli_nightly_prints_report_path(small_lake: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    from jobs.cli import app

    day = D - dt.timedelta(days=1)
    res = CliRunner().invoke(app, ["--data-dir", str(small_lake.root), "nightly", "--date", day.isoformat()])
    assert res.exit_code == 0, res.output
    assert "report:" in res.output and f"{small_lake.reports / day.isoformat()}" in res.output.replace(
        "\n", ""
    )
    bad = CliRunner().invoke(app, ["--data-dir", str(small_lake.root), "nightly", "--date", "30-06-2025"])
    assert bad.exit_code != 0


def test_empty_lake_runs_and_writes_empty_partition(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "data").ensure()
    res = run_nightly(paths, D, report=False, data_docs=False)
    assert res.runners == 0
    assert lake.read_table(paths.table("injury_risk"), INJURY_RISK).num_rows == 0
