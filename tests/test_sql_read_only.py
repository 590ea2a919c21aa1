"""`gluteflow sql` reads the lake and nothing else (issue 13, item 5): no file written, no other file read,
no extension installed, no setting changed; lake queries still work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is not an installed package

from bench.synthetic_lake import LakeSpec, write_synthetic_lake  # noqa: E402
from infra.settings import Paths  # noqa: E402
from jobs.cli import app  # noqa: E402
from pipelines.catalog.analyst import connect_read_only, execute_read  # noqa: E402
from pipelines.catalog.builder import build_catalog  # noqa: E402
from pipelines.catalog.queries import load_queries  # noqa: E402


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    paths = Paths(tmp_path_factory.mktemp("sqlro") / "data").ensure()
    write_synthetic_lake(
        paths, LakeSpec(runners=6, days=10, strides_per_run=5, end_date="2025-06-30", seed=3)
    )
    build_catalog(paths)
    return paths


def sql(paths: Paths, query: str):
    return CliRunner().invoke(app, ["--data-dir", str(paths.root), "sql", "-c", query])


def test_lake_queries_work(lake: Paths) -> None:
    res = sql(lake, "SELECT count(*) AS n FROM strides")
    assert res.exit_code == 0, res.output
    n = int(res.output.split("│")[-2].strip()) if "│" in res.output else None
    con = connect_read_only(lake.catalog, lake.lake)
    assert n == execute_read(con, "SELECT count(*) FROM strides").fetchone()[0] > 0
    # the lake's files themselves may be read directly
    glob = str(lake.lake.resolve() / "strides" / "*" / "*.parquet")
    assert execute_read(con, f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0] == n
    for q in load_queries():  # every documented analyst query runs on the fenced connection
        execute_read(con, q.sql).fetchall()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("COPY (SELECT 1) TO '{tmp}/x.csv'", "read-only"),
        ("COPY (SELECT * FROM strides) TO '{lake}/strides/evil.parquet'", "read-only"),
        ("EXPORT DATABASE '{tmp}/export'", "read-only"),
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration"),
        ("SELECT * FROM read_csv('{lake}/../../../../etc/passwd')", "disabled by configuration"),
        ("SELECT * FROM read_text('{tmp}/secret.txt')", "disabled by configuration"),
        ("SELECT * FROM read_parquet('https://example.com/x.parquet')", "disabled by configuration"),
        ("SELECT * FROM glob('/etc/*')", "disabled by configuration"),
        ("INSTALL httpfs", "read-only"),
        ("LOAD httpfs", "read-only"),
        ("ATTACH '{tmp}/other.duckdb'", "read-only"),
        ("SET enable_external_access = true", "read-only"),
        ("SELECT 1; COPY (SELECT 1) TO '{tmp}/y.csv'", "read-only"),
    ],
)
def test_everything_but_reading_the_lake_fails_clearly(
    lake: Paths, tmp_path: Path, query: str, message: str
) -> None:
    (tmp_path / "secret.txt").write_text("secret\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    lake_files = sorted(lake.lake.rglob("*"))
    res = sql(lake, query.format(tmp=tmp_path, lake=lake.lake.resolve()))
    assert res.exit_code != 0, res.output
    assert message in res.output.replace("\n", " "), res.output
    assert "Traceback" not in res.output and "secret" not in res.output.replace("secret.txt", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert sorted(lake.lake.rglob("*")) == lake_files


def test_settings_cannot_be_unlocked_from_a_query(lake: Paths) -> None:
    con = connect_read_only(lake.catalog, lake.lake)
    with pytest.raises(Exception, match="locked"):
        con.execute("SET enable_external_access = true")  # even bypassing the statement filter
    settings = dict(
        execute_read(
            con,
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('enable_external_access', 'lock_configuration', 'allowed_directories')",
        ).fetchall()
    )
    assert settings["enable_external_access"] == "false" and settings["lock_configuration"] == "true"
    assert str(lake.lake.resolve()) in settings["allowed_directories"]


def test_interactive_shell_is_fenced_too(lake: Paths, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app,
        ["--data-dir", str(lake.root), "sql"],
        input=f"COPY (SELECT 1) TO '{tmp_path}/z.csv';\nSELECT 40 + 2 AS answer;\n.quit\n",
    )
    assert res.exit_code == 0 and "read-only" in res.output and "42" in res.output
    assert not (tmp_path / "z.csv").exists()
