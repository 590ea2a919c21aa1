"""``gluteflow daily``: daily load, rolling load and compensation scores (Beam batch job)."""

from __future__ import annotations

import typer

from jobs.console import console, fail, parse_date, paths_from


def register(app: typer.Typer) -> None:
    """Add the ``daily`` command to ``app``."""

    @app.command("daily")
    def daily(
        ctx: typer.Context,
        date: str = typer.Option(None, "--date", help="one local date, YYYY-MM-DD"),
        date_from: str = typer.Option(None, "--from", help="first local date of a range"),
        date_to: str = typer.Option(None, "--to", help="last local date of a range (default: --from)"),
        since_changes: bool = typer.Option(
            False,
            "--since-changes",
            help="recompute from the earliest local date whose inputs changed since the last run to the latest",
        ),
        runner: str = typer.Option("fnapi", "--runner", help="fnapi (local) | dask"),
        dask_address: str = typer.Option(
            None,
            "--dask-address",
            envvar="DASK_SCHEDULER_ADDRESS",
            help="scheduler of a running Dask cluster",
        ),
    ) -> None:
        """One row per runner per local date -> data/lake/daily (reruns replace; a failed quality gate blocks a date)."""
        from pipelines.daily.pipeline import changed_range, partition_snapshot, run_daily, save_state
        from pipelines.daily.transforms import problems_file_name

        paths = paths_from(ctx)
        picked = sum(x is not None and x is not False for x in (date, date_from, since_changes or None))
        if picked != 1:
            fail("give exactly one of --date D, --from D1 [--to D2], --since-changes")
        snapshot = partition_snapshot(paths)
        if since_changes:
            rng = changed_range(paths, snapshot)
            if rng is None:
                console.print("daily: no input partition changed since the last run; nothing to do")
                return
            first, last = rng
        elif date is not None:
            first = last = parse_date(date, "--date")
        else:
            first = parse_date(date_from, "--from")
            last = parse_date(date_to, "--to") if date_to else first
        if last < first:
            fail(f"--to {last} is before --from {first}")
        args = [f"--dask_client_address={dask_address}"] if (runner == "dask" and dask_address) else []
        with console.status(f"daily job {first}..{last} on {runner} ..."):
            try:
                result = run_daily(paths, first, last, runner=runner, pipeline_args=args)
            except ValueError as exc:
                fail(str(exc))
        published = [d for d in result.dates if d["published"]]
        console.print(
            f"daily {first}..{last}: {len(published)} dates published, {result.rows} rows -> {paths.table('daily')}"
        )
        if not result.dates:
            console.print("  no runners or sessions in range: nothing written")
        if result.flagged:  # one runner's bad rows never stop the fleet: say what was left out
            console.print(f"[yellow]flagged[/] {len(result.flagged)} session(s)/runner(s), left out:")
            for f in result.flagged:
                where = f"runner {f['runner_id']}" + (
                    f", session {f['session_id']}" if f["session_id"] else ""
                )
                console.print(f"    - {where}: {f['reason']}: {f['detail']}")
            console.print(f"  list: {paths.quality / 'daily' / problems_file_name(result.run_id)}")
        for b in result.blocked:
            console.print(f"[bold red]blocked[/] {b['date']} ({b['rows']} rows) by the quality gate:")
            for f in b["failures"]:
                console.print(f"    - {f}")
        if result.blocked:
            console.print(f"  validation results: {paths.quality / 'daily'}")
            raise typer.Exit(2)
        if not since_changes:
            return
        save_state(paths, snapshot, first, last)
