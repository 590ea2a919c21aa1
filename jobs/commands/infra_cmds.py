"""`gluteflow broker start|status|stop` and `gluteflow topics apply|list`."""

from __future__ import annotations

import typer
from rich.table import Table

from infra import broker, topics
from jobs.console import console, fail, paths_from


def register(app: typer.Typer) -> None:
    broker_app = typer.Typer(
        help="Start, inspect and stop the embedded Kafka broker (Tansu).", no_args_is_help=True
    )
    topics_app = typer.Typer(help="Declared Kafka topics (infra/topics.yaml).", no_args_is_help=True)
    app.add_typer(broker_app, name="broker")
    app.add_typer(topics_app, name="topics")

    @broker_app.command("start")
    def broker_start(ctx: typer.Context) -> None:
        """Start Tansu on a free loopback port (no-op with KAFKA_BOOTSTRAP_SERVERS set)."""
        paths = paths_from(ctx)
        try:
            info = broker.start(paths)
        except broker.BrokerError as exc:
            fail(str(exc))
        where = "external cluster (KAFKA_BOOTSTRAP_SERVERS)" if info.external else f"pid {info.pid}"
        console.print(f"broker [green]up[/] at {info.bootstrap} ({where})")

    @broker_app.command("status")
    def broker_status(ctx: typer.Context) -> None:
        """Show the broker's address and whether it answers Kafka metadata; exit 1 when down."""
        info, ok = broker.status(paths_from(ctx))
        if info is None:
            console.print("broker: [yellow]not started[/]")
            raise typer.Exit(1)
        state = "[green]up[/]" if ok else "[red]down[/]"
        console.print(f"broker {state} at {info.bootstrap} (pid {info.pid or 'external'})")
        raise typer.Exit(0 if ok else 1)

    @broker_app.command("stop")
    def broker_stop(ctx: typer.Context) -> None:
        """Stop the broker this data directory started."""
        info = broker.stop(paths_from(ctx))
        console.print(f"broker stopped (pid {info.pid})" if info else "no broker was running")

    @topics_app.command("apply")
    def topics_apply(ctx: typer.Context) -> None:
        """Create the declared topics that do not exist yet (idempotent)."""
        try:
            result = topics.apply(broker.bootstrap_servers(paths_from(ctx)))
        except broker.BrokerError as exc:
            fail(str(exc))
        for name, state in result.items():
            console.print(f"{name}: {state}")

    @topics_app.command("list")
    def topics_list() -> None:
        """List declared topics with partitions, retention and cleanup policy."""
        table = Table("key", "topic", "partitions", "cleanup", "retention", "contents")
        for spec in topics.declared().values():
            days = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms / 86_400_000:g} d"
            table.add_row(spec.key, spec.name, str(spec.partitions), spec.cleanup_policy, days, spec.doc)
        console.print(table)
