"""``gluteflow sql``: analysts' read-only DuckDB access to the catalog (one query or an interactive shell)."""

from __future__ import annotations

import typer
from rich.table import Table

from jobs.console import console, fail, paths_from

MAX_ROWS = 200


def print_result(con, sql: str, max_rows: int = MAX_ROWS) -> None:  # noqa: ANN001 - duckdb connection
    """Run ``sql`` (reads only, :func:`execute_read`) and print a rich table (first ``max_rows`` rows)."""
    from pipelines.catalog.analyst import execute_read

    cur = execute_read(con, sql)
    if cur.description is None:
        console.print("ok")
        return
    cols = [d[0] for d in cur.description]
    rows = cur.fetchmany(max_rows + 1)
    table = Table(*cols, header_style="bold")
    for row in rows[:max_rows]:
        table.add_row(*("NULL" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)
    more = " (more rows not shown)" if len(rows) > max_rows else ""
    console.print(f"[dim]{min(len(rows), max_rows)} row(s){more}[/]")


def register(app: typer.Typer) -> None:
    """Add the ``sql`` command to ``app``."""

    @app.command("sql")
    def sql(
        ctx: typer.Context,
        command: str = typer.Option(None, "-c", "--command", help="run one query, print it as a table, exit"),
        rebuild: bool = typer.Option(False, "--rebuild", help="rebuild the catalog first"),
        max_rows: int = typer.Option(MAX_ROWS, "--max-rows", help="rows to print per query"),
    ) -> None:
        """Query the lake through data/gluteflow.duckdb, read-only: SELECT and EXPLAIN over the lake's files,
        nothing else (no COPY/EXPORT, no other file or URL, no extensions; see docs/queries.md)."""
        import duckdb

        from pipelines.catalog.analyst import connect_read_only
        from pipelines.catalog.builder import build_catalog

        paths = paths_from(ctx)
        if rebuild or not paths.catalog.exists():
            build_catalog(paths)
        # always this shell, never the duckdb CLI: its dot commands (.output, .shell) write and run anything
        con = connect_read_only(paths.catalog, paths.lake)
        try:
            if command is not None:
                try:
                    print_result(con, command, max_rows)
                except duckdb.Error as exc:
                    fail(f"{type(exc).__name__}: {exc}")
                return
            console.print(
                f"gluteflow sql (read-only) on {paths.catalog}. End statements with ';'. .quit to exit."
            )
            buf: list[str] = []
            while True:
                try:
                    line = input("sql> " if not buf else "...> ")
                except EOFError:
                    break
                if not buf and line.strip() in (".quit", ".exit", "\\q"):
                    break
                if not buf and line.strip() == ".tables":
                    line = "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal ORDER BY 1;"
                buf.append(line)
                if line.rstrip().endswith(";"):
                    try:
                        print_result(con, "\n".join(buf), max_rows)
                    except duckdb.Error as exc:
                        console.print(f"[red]{type(exc).__name__}:[/] {exc}")
                    buf = []
        finally:
            con.close()
