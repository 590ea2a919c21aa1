"""``gluteflow nightly`` (risk -> quality -> publish -> catalog -> report) and ``gluteflow catalog``."""

from __future__ import annotations

import datetime as dt

import typer
from rich.table import Table

from jobs.console import console, err_console, parse_date, paths_from


def register(app: typer.Typer) -> None:
    """Add the ``nightly`` and ``catalog`` commands to ``app``."""

    @app.command("nightly")
    def nightly(
        ctx: typer.Context,
        date: str = typer.Option(None, "--date", help="report date YYYY-MM-DD (default: today, UTC)"),
        no_report: bool = typer.Option(False, "--no-report", help="skip the HTML/CSV/Parquet reports"),
        no_docs: bool = typer.Option(False, "--no-docs", help="skip writing Great Expectations Data Docs"),
    ) -> None:
        """Score injury risk per runner for DATE, validate, publish injury_risk, rebuild the catalog, write reports."""
        from pipelines.nightly.job import QualityGateFailed, run_nightly

        day = parse_date(date, "--date") or dt.datetime.now(dt.UTC).date()
        paths = paths_from(ctx)
        with console.status(f"nightly {day} ...") as status:
            try:
                result = run_nightly(
                    paths,
                    day,
                    report=not no_report,
                    data_docs=not no_docs,
                    progress=lambda m: status.update(m),
                )
            except QualityGateFailed as exc:
                err_console.print(f"[bold red]quality gate failed[/] for {day}: nothing was published.")
                for r in exc.summary.results:
                    mark = "[green]pass[/]" if r.success else "[red]FAIL[/]"
                    err_console.print(f"  {r.suite}: {mark} ({r.failed}/{r.evaluated} expectations failed)")
                    for f in r.failures:
                        err_console.print(f"    - {f}")
                if exc.summary.docs_index:
                    err_console.print(f"  Data Docs: {exc.summary.docs_index}")
                raise typer.Exit(2) from None
        if result.runners == 0:
            console.print(
                f"nightly {day}: no daily rows in the 8 weeks up to {day}; injury_risk written empty"
            )
        table = Table("level", "runners", title=f"injury risk {day} ({result.runners} runners)")
        for lvl in ("high", "elevated", "low"):
            table.add_row(lvl, str(result.levels[lvl]))
        console.print(table)
        q = result.quality
        console.print(
            f"quality: {'[green]passed[/]' if q.success else '[red]failed[/]'} "
            + ", ".join(f"{r.suite} {r.evaluated - r.failed}/{r.evaluated}" for r in q.results)
            + (f" · Data Docs {q.docs_index}" if q.docs_index else "")
        )
        console.print(f"injury_risk -> {result.risk_path}")
        if result.catalog:
            console.print(f"catalog -> {result.catalog}")
        console.print(f"took {result.timings_s.get('total', 0):.1f} s")
        for path in result.reports:
            console.print(f"report: {path}")

    @app.command("catalog")
    def catalog(ctx: typer.Context) -> None:
        """(Re)build data/gluteflow.duckdb: staging views and marts over the lake (see docs/catalog.md)."""
        from pipelines.catalog.builder import build_catalog, describe_catalog

        paths = paths_from(ctx)
        path = build_catalog(paths)
        table = Table("view", "layer; grain")
        for name, comment in describe_catalog(path):
            if not name.startswith("src_"):
                table.add_row(name, comment)
        console.print(table)
        console.print(f"catalog -> {path}")
