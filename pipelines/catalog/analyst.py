"""The analysts' connection to the catalog: reads the lake and nothing else.

DuckDB's own settings do the fencing (https://duckdb.org/docs/operations_manual/securing_duckdb):
the catalog file is opened read-only, file access is limited to the lake directory
(``allowed_directories`` then ``enable_external_access = false``: no other local file, no URL, no
extension install or load, no ATTACH), and ``lock_configuration`` stops a query from undoing that.
The lake itself must stay unwritable too, which no setting covers (``COPY ... TO`` a path inside an
allowed directory is allowed), so only read statements are run: :data:`READ_STATEMENTS`.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

#: statement types an analyst may run (``SHOW``, ``DESCRIBE``, ``SUMMARIZE``, ``FROM t`` and CTEs are SELECTs)
READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


class ReadOnlyViolation(duckdb.PermissionException):
    """A statement that is not a read (COPY, EXPORT, INSTALL, SET, ATTACH, ...)."""


def connect_read_only(catalog: Path, lake: Path) -> duckdb.DuckDBPyConnection:
    """Open ``catalog`` read-only, able to read files under ``lake`` only, settings locked."""
    # a private in-memory instance with the catalog attached: settings are per instance, and DuckDB
    # shares one instance per database file within a process (other users of the file keep theirs)
    con = duckdb.connect(
        ":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute(f"ATTACH {_quote(str(catalog))} AS catalog (READ_ONLY)")
    con.execute("USE catalog")
    # the views' lake paths are relative to the catalog's folder (a moved data dir still works)
    con.execute(f"SET file_search_path = {_quote(str(Path(catalog).resolve().parent))}")
    # order matters: allowed_directories can only be set while external access is still enabled
    # the lake, absolute and as the views name it (relative to the catalog's folder; ".." is refused)
    lake_abs = Path(lake).resolve()
    lake_rel = os.path.relpath(lake_abs, Path(catalog).resolve().parent)
    con.execute("SET allowed_directories = ?", [[str(lake_abs) + "/", lake_rel + "/"]])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def execute_read(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
    """Run ``sql`` if every statement in it is a read; the cursor of the last one."""
    statements = con.extract_statements(sql)
    for st in statements:
        if st.type not in READ_STATEMENTS:
            kind = st.type.name
            raise ReadOnlyViolation(
                f"gluteflow sql is read-only: {kind} statements are not allowed (SELECT and EXPLAIN only)"
            )
    cur = con
    for st in statements:
        cur = con.execute(st)
    return cur
