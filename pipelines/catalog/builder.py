"""Build ``<data>/gluteflow.duckdb``: views over the Parquet lake, layered staging -> marts (dbt style).

* ``src_<table>``: the raw relation: ``read_parquet('lake/<table>/*/*.parquet', hive_partitioning``,
  typed partition key) when the table has files, else a typed empty ``SELECT ... WHERE false`` built from the
  table's Arrow contract, so every view binds on a fresh lake. Paths are **relative to the catalog file's
  folder** (the data dir), never absolute: the data dir can be moved or mounted elsewhere. DuckDB resolves
  relative paths against ``file_search_path`` (else the working directory): :func:`connect_catalog` sets it
  to the catalog's folder; plain DuckDB users ``SET file_search_path = '<data dir>'`` or start in the data dir.
* ``stg_<table>`` (``sql/staging/*.sql``): rename and cast.
* marts (``sql/marts/*.sql``): ``strides``, ``daily``, ``injury_risk``, ``runners``, ``cohorts``, ``dead_letters``.

Views are bound when queried, so new partitions show up without a rebuild; a rebuild is needed only when a
table goes from empty to non-empty (the nightly job rebuilds every night, ``gluteflow catalog`` on demand).
The build writes a new file next to the catalog and renames it over the old one (readers never see half a
catalog).
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa

from infra.settings import Paths
from pipelines.lake import partition_key
from schemas.risk_table import INJURY_RISK
from schemas.tables import DEAD_LETTERS, RUNNERS, SESSIONS, STRIDES, WATCH_RECORDS

__all__ = ["MARTS", "STAGING", "build_catalog", "connect_catalog", "source_sql", "sql_text"]

#: staging views in build order
STAGING = (
    "stg_runners",
    "stg_strides",
    "stg_daily",
    "stg_injury_risk",
    "stg_dead_letters",
    "stg_sessions",
    "stg_watch_records",
)
#: marts in build order (runners first: the others join it)
MARTS = ("runners", "strides", "daily", "injury_risk", "dead_letters", "cohorts", "watch_developer_fields")


def _daily_schema() -> pa.Schema:
    try:
        from schemas.daily_table import DAILY  # written by the daily job's owner

        return DAILY
    except ImportError:  # not landed yet: the columns the nightly job reads
        return pa.schema(
            [
                pa.field("runner_id", pa.string()),
                pa.field("cohort", pa.string()),
                pa.field("distance_m", pa.float64()),
                pa.field("duration_s", pa.float64()),
                pa.field("longest_run_m", pa.float64()),
                pa.field("acwr", pa.float64()),
                pa.field("compensation_score", pa.float64()),
                pa.field("date", pa.date32()),
            ]
        )


def contracts() -> dict[str, pa.Schema]:
    """Arrow contract of every table the catalog exposes."""
    return {
        "strides": STRIDES,
        "watch_records": WATCH_RECORDS,
        "sessions": SESSIONS,
        "runners": RUNNERS,
        "dead_letters": DEAD_LETTERS,
        "injury_risk": INJURY_RISK,
        "daily": _daily_schema(),
    }


def sql_text(layer: str, name: str) -> str:
    """The SQL of one model (``layer`` = staging | marts)."""
    return resources.files("pipelines.catalog").joinpath("sql", layer, f"{name}.sql").read_text()


def grain_of(layer: str, name: str) -> str:
    """The model's grain, from its header comment (``-- name — grain: ...``)."""
    m = re.search(r"grain:\s*([^.(\n]+)", sql_text(layer, name))
    return m.group(1).strip() if m else ""


def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def _empty_select(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> str:
    """A typed, empty SELECT with the contract's columns (DuckDB types derived from Arrow)."""
    empty = schema.empty_table()
    name = f"_empty_{uuid.uuid4().hex[:8]}"
    con.register(name, empty)
    try:
        types = con.execute(f"DESCRIBE {name}").fetchall()
    finally:
        con.unregister(name)
    cols = ", ".join(f'CAST(NULL AS {t[1]}) AS "{t[0]}"' for t in types)
    return f"(SELECT {cols} WHERE false)"


def source_sql(
    con: duckdb.DuckDBPyConnection, lake: Path, table: str, schema: pa.Schema, base: Path | None = None
) -> tuple[str, str]:
    """(relation SQL, partition key) for one lake table; see the module docstring. File globs are written
    relative to ``base`` (the catalog's folder; absolute when ``base`` is None)."""
    tdir = lake / table
    key = partition_key(tdir)
    where = Path(os.path.relpath(tdir.resolve(), base.resolve())) if base is not None else tdir.resolve()
    if key is not None and any(tdir.glob("*/*.parquet")):
        glob = where.as_posix() + "/*/*.parquet"
        return (
            f"read_parquet({_quote(glob)}, hive_partitioning = true, union_by_name = true, "
            f"hive_types = {{'{key}': DATE}})",
            key,
        )
    if key is None and tdir.exists() and any(tdir.glob("*.parquet")):
        glob = where.as_posix() + "/*.parquet"
        return f"read_parquet({_quote(glob)}, union_by_name = true)", "date"
    date_key = "local_date" if "local_date" in schema.names else "date"
    return _empty_select(con, schema), date_key


@dataclass
class CatalogInfo:
    path: Path
    views: list[str]


def build_catalog(paths: Paths, target: Path | None = None) -> Path:
    """(Re)build the catalog file atomically; returns its path."""
    target = target or paths.catalog
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    con = duckdb.connect(str(tmp))
    con.execute(f"SET file_search_path = {_quote(str(target.parent.resolve()))}")  # views bind relative paths
    try:
        schemas = contracts()
        keys: dict[str, str] = {}
        for table, schema in schemas.items():
            rel, key = source_sql(con, paths.lake, table, schema, base=target.parent)
            keys[table] = key
            con.execute(f"CREATE OR REPLACE VIEW src_{table} AS SELECT * FROM {rel}")
        for name in STAGING:
            table = name.removeprefix("stg_")
            sql = sql_text("staging", name)
            sql = sql.replace("{{ source }}", f"src_{table}").replace("{{ date_key }}", keys[table])
            con.execute(f"CREATE OR REPLACE VIEW {name} AS\n{sql}")
        for name in MARTS:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS\n{sql_text('marts', name)}")
        for layer, names in (("staging", STAGING), ("marts", MARTS)):
            for name in names:
                comment = f"{layer}; grain: {grain_of(layer, name)}"
                con.execute(f"COMMENT ON VIEW {name} IS {_quote(comment)}")
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
        raise
    con.close()
    os.replace(tmp, target)
    Path(str(target) + ".wal").unlink(missing_ok=True)
    return target


def connect_catalog(catalog: Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the catalog with its folder as ``file_search_path``, so its relative lake paths resolve
    wherever the data dir lives and whatever the working directory is."""
    con = duckdb.connect(str(catalog), read_only=read_only)
    con.execute(f"SET file_search_path = {_quote(str(Path(catalog).resolve().parent))}")
    return con


def describe_catalog(catalog: Path) -> list[tuple[str, str]]:
    """(view name, comment) for every view in a built catalog."""
    con = connect_catalog(catalog)
    try:
        return con.execute(
            "SELECT view_name, coalesce(comment, '') FROM duckdb_views() WHERE NOT internal ORDER BY view_name"
        ).fetchall()
    finally:
        con.close()
