"""The DuckDB catalog: views over the lake (empty or not), read-only access, docs/queries.md, pruning."""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is not an installed package

from bench.synthetic_lake import LakeSpec, write_synthetic_lake  # noqa: E402
from infra.settings import Paths  # noqa: E402
from pipelines.catalog.builder import MARTS, STAGING, build_catalog, connect_catalog, describe_catalog  # noqa: E402
from pipelines.catalog.queries import load_queries  # noqa: E402
from pipelines.nightly.job import run_nightly  # noqa: E402

D = dt.date(2025, 6, 30)
SPEC = LakeSpec(runners=120, days=60, strides_per_run=10, end_date=D.isoformat(), seed=11)
QUERIES = load_queries()


@pytest.fixture(scope="module")
def lake_paths(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    paths = Paths(tmp_path_factory.mktemp("catalog") / "data").ensure()
    write_synthetic_lake(paths, SPEC)
    run_nightly(paths, D - dt.timedelta(days=7), report=False, catalog=False, data_docs=False)
    run_nightly(paths, D, report=False, data_docs=False)  # rebuilds the catalog
    return paths


def test_empty_lake_catalog_binds_every_view(paths: Paths) -> None:
    cat = build_catalog(paths)
    con = connect_catalog(cat)
    for view in (*STAGING, *MARTS):
        assert con.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,), view
    cols = {r[0]: r[1] for r in con.execute("DESCRIBE strides").fetchall()}
    assert cols["ic_time"] == "TIMESTAMP WITH TIME ZONE" and cols["utc_date"] == "DATE"
    assert "risk_score" in {r[0] for r in con.execute("DESCRIBE injury_risk").fetchall()}
    # every staging view and mart documents its grain
    comments = dict(describe_catalog(cat))
    for view in (*STAGING, *MARTS):
        assert "grain: one row per" in comments[view], view


def test_views_use_relative_hive_globs(lake_paths: Paths) -> None:
    con = connect_catalog(lake_paths.catalog)
    sql = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'src_strides'").fetchone()[0]
    assert "'lake/strides/*/*.parquet'" in sql and "hive_partitioning" in sql
    paths_in_views = " ".join(
        r[0] for r in con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall()
    )
    assert str(lake_paths.root.resolve()) not in paths_in_views
    n = con.execute("SELECT count(*) FROM strides").fetchone()[0]
    assert n > 0 and con.execute("SELECT count(DISTINCT report_date) FROM injury_risk").fetchone() == (2,)


def test_catalog_works_after_the_data_dir_moves(lake_paths: Paths, tmp_path: Path, monkeypatch) -> None:
    import shutil

    query = "SELECT count(*), count(DISTINCT runner_id), max(report_date) FROM injury_risk"
    before = connect_catalog(lake_paths.catalog).execute(query).fetchall()
    moved = Paths(tmp_path / "elsewhere" / "data")
    moved.root.parent.mkdir(parents=True)
    shutil.move(lake_paths.root, moved.root)  # the old location no longer exists
    try:
        assert connect_catalog(moved.catalog).execute(query).fetchall() == before
        # plain DuckDB started in the data dir resolves the relative paths too
        monkeypatch.chdir(moved.root)
        assert duckdb.connect("gluteflow.duckdb", read_only=True).execute(query).fetchall() == before
        res = CliRunner().invoke(
            __import__("jobs.cli", fromlist=["app"]).app, ["--data-dir", str(moved.root), "sql", "-c", query]
        )
        assert res.exit_code == 0, res.output
    finally:
        shutil.move(moved.root, lake_paths.root)


def test_catalog_is_read_only_for_analysts(lake_paths: Paths) -> None:
    con = connect_catalog(lake_paths.catalog)
    with pytest.raises(duckdb.Error, match="read-only"):
        con.execute("CREATE TABLE x AS SELECT 1")
    res = CliRunner().invoke(
        __import__("jobs.cli", fromlist=["app"]).app,
        ["--data-dir", str(lake_paths.root), "sql", "-c", "DROP VIEW strides"],
    )
    assert res.exit_code != 0 and "read-only" in res.output.replace("\n", " ")


def test_sql_command_prints_a_table(lake_paths: Paths) -> None:
    from jobs.cli import app

    res = CliRunner().invoke(
        app,
        ["--data-dir", str(lake_paths.root), "sql", "-c", "SELECT cohort, runners FROM cohorts ORDER BY 1"],
    )
    assert res.exit_code == 0, res.output
    assert "harbour-harriers" in res.output and "row(s)" in res.output
    shell = CliRunner().invoke(
        app, ["--data-dir", str(lake_paths.root), "sql"], input="SELECT 40 + 2 AS answer;\n.quit\n"
    )
    assert shell.exit_code == 0 and "42" in shell.output


def test_queries_doc_has_ten_or_more() -> None:
    assert len(QUERIES) >= 10
    assert all(q.columns for q in QUERIES)


@pytest.mark.parametrize("query", QUERIES, ids=[f"q{q.number}" for q in QUERIES])
def test_documented_query_runs(lake_paths: Paths, query) -> None:
    con = connect_catalog(lake_paths.catalog)
    cur = con.execute(query.sql)
    rows = cur.fetchall()
    assert tuple(d[0] for d in cur.description) == query.columns
    if query.expect_rows:
        assert rows, f"query {query.number} ({query.title}) returned no rows on the synthetic lake"


def test_sane_results(lake_paths: Paths) -> None:
    con = connect_catalog(lake_paths.catalog)
    by = {q.number: q for q in QUERIES}
    shares = con.execute(by[1].sql).fetchall()
    assert all(0 < r[3] < 1 for r in shares)  # glute share is a fraction
    calf = con.execute(by[2].sql).fetchall()
    assert all(r[6] > 20 for r in calf)  # rose by more than 20 %
    flagged = con.execute(by[4].sql).fetchall()
    assert all(r[2] in ("elevated", "high") for r in flagged)
    cohorts = con.execute("SELECT sum(runners) FROM cohorts").fetchone()[0]
    assert cohorts == SPEC.runners


def test_one_runner_date_range_reads_only_its_partitions(lake_paths: Paths) -> None:
    con = connect_catalog(lake_paths.catalog)
    q8 = next(q for q in QUERIES if q.number == 8)
    plan = con.execute("EXPLAIN ANALYZE " + q8.sql).fetchall()[0][1]
    m = re.search(r"Scanning Files:\s*(\d+)\s*/\s*(\d+)", plan)
    assert m, plan
    assert (int(m.group(1)), int(m.group(2))) == (7, SPEC.days)  # 7 of 60 date folders
