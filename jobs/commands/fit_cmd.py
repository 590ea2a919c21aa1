"""`gluteflow import-fit FILE... --runner ID`: publish FIT files' running sessions to Kafka."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from jobs.console import console, err_console, fail, paths_from


def _summary_line(result) -> str:
    name = Path(result.path).name
    if not result.ok:
        dl = sum(result.dead_lettered.values())
        suffix = f" -> {dl} dead letter" if dl else ""
        return f"[red]✗[/] {name}: {result.error}{suffix}"
    parts = [f"{result.sessions} running session{'s' if result.sessions != 1 else ''}"]
    parts.append(f"{result.records} records, {result.markers} markers")
    if result.skipped:
        parts.append("skipped " + ", ".join(result.skipped))
    if result.dead_lettered:
        parts.append(
            "dead-lettered "
            + ", ".join(f"{n} {reason}" for reason, n in sorted(result.dead_lettered.items()))
        )
    mark = "[green]✓[/]" if result.sessions else "[yellow]-[/]"
    return f"{mark} {name}: " + "; ".join(parts)


def register(app: typer.Typer) -> None:
    @app.command("import-fit")
    def import_fit(
        ctx: typer.Context,
        files: Annotated[
            list[Path], typer.Argument(help="FIT files (activity exports from a watch or foot pod).")
        ],
        runner: Annotated[str, typer.Option("--runner", help="Pseudonymous runner id the files belong to.")],
        device_id: Annotated[
            str | None,
            typer.Option(
                "--device-id",
                help="Device id to record (default: manufacturer-product-serial from the file).",
            ),
        ] = None,
    ) -> None:
        """Decode FIT files (the whole FIT protocol: header CRC 0, compressed timestamps, chained files,
        multisport) and publish their running sessions as watch records, developer fields included.

        Walks, rides and other sports are skipped. A corrupt file publishes nothing and lands one
        `corrupt_file` dead letter; the other files still import. Exit code 1 when any file failed.
        """
        from infra import broker, topics
        from jobs.fit_import import import_files

        if not runner.strip():
            fail("--runner must not be empty")
        paths = paths_from(ctx)
        try:
            bootstrap = broker.bootstrap_servers(paths)
            topics.apply(bootstrap)
        except broker.BrokerError as exc:
            fail(str(exc))

        def on_file(result) -> None:
            line = _summary_line(result)
            if result.ok:
                console.print(line, soft_wrap=True)
            else:
                # one line naming the file and the problem
                err_console.print(line, soft_wrap=True)

        results, counts = import_files(bootstrap, [str(f) for f in files], runner, device_id, on_file=on_file)

        table = Table(title="import-fit totals", show_header=True)
        table.add_column("files")
        table.add_column("sessions", justify="right")
        table.add_column("accepted", justify="right")
        table.add_column("dead-lettered", justify="right")
        table.add_column("by reason")
        table.add_row(
            f"{sum(r.ok for r in results)}/{len(results)} ok",
            str(sum(r.sessions for r in results)),
            str(counts.accepted),
            str(counts.dead_lettered),
            ", ".join(f"{reason}: {n}" for reason, n in sorted(counts.by_reason.items())) or "-",
        )
        console.print(table)
        if not counts.reconciles():
            fail(
                f"counts do not reconcile: in {counts.received} != {counts.accepted} + {counts.dead_lettered}"
            )
        if not all(r.ok for r in results):
            raise typer.Exit(1)
