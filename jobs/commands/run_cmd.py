"""`gluteflow run`: the main job on embedded defaults."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.table import Table

from jobs.console import console, fail, parse_date, paths_from

DEFAULT_START = dt.date(2026, 10, 5)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        ctx: typer.Context,
        runners: int = typer.Option(10, "--runners", "-n", min=1, help="Runners to simulate."),
        days: int = typer.Option(
            35,
            "--days",
            "-d",
            min=1,
            help="Days to simulate (35: four-week baselines and the 30-day spike rule).",
        ),
        start: str = typer.Option(DEFAULT_START.isoformat(), "--start", help="First simulated local date."),
        seed: int = typer.Option(7, "--seed", help="Simulation seed (same seed -> same data)."),
        duration_scale: float = typer.Option(
            0.04,
            "--duration-scale",
            min=0.01,
            max=3.0,
            help="Scale simulated session durations (1.0 = full 25-95 min runs; 0.04 keeps make run to minutes).",
        ),
        block_s: int = typer.Option(
            1, "--block-seconds", min=1, max=10, help="Seconds of samples per sensor block."
        ),
        fit_dir: Path = typer.Option(
            None, "--fit-dir", help="FIT files to import too (default ../shared/fixtures/fit when present)."
        ),
        no_fit: bool = typer.Option(False, "--no-fit", help="Do not import FIT files."),
        stories: bool = typer.Option(
            True,
            "--stories/--no-stories",
            help="Runners r0000-r0004 follow storylines (distance spike, rising calf dominance, pelvic drop, "
            "asymmetry, chronic glute under-activation): see jobs/simulate/stories.py.",
        ),
        via_gateway: bool = typer.Option(
            False, "--via-gateway", help="Send the simulated fleet through a gateway started for the run."
        ),
    ) -> None:
        """Start the embedded broker, simulate a fleet, import FIT files, run stream, daily and nightly
        jobs, build the DuckDB catalog and the report, print counts and an example query, stop the broker."""
        from jobs.run_chain import default_fit_dir, run_chain

        paths = paths_from(ctx)
        first = parse_date(start, "--start")
        fit_files: list[Path] = []
        if not no_fit:
            folder = fit_dir or default_fit_dir()
            if folder.exists():
                fit_files = sorted(folder.glob("*.fit"))
            elif fit_dir:
                fail(f"--fit-dir {fit_dir} does not exist")
            else:
                console.print(f"[yellow]no FIT files imported: {folder} not found[/]")
        try:
            result = run_chain(
                paths,
                runners,
                days,
                first,
                seed,
                fit_files,
                duration_scale,
                say=console.print,
                stories=stories,
                via_gateway=via_gateway,
            )
        except RuntimeError as exc:
            fail(str(exc))
        table = Table("step", "seconds", title="gluteflow run", title_justify="left")
        for name, secs in result.timings_s.items():
            table.add_row(name, f"{secs:.1f}")
        table.add_row("[bold]total[/]", f"{sum(result.timings_s.values()):.1f}")
        console.print(table)
        console.print(f"lake: {paths.lake}\ncatalog: {paths.catalog}  (gluteflow sql)")
        for report in result.reports:
            console.print(f"report: {report}")
        if result.started_broker:
            console.print("broker stopped; no process left behind")
        else:
            console.print("broker left running: it was not started by this run")
