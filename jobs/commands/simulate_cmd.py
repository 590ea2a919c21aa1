"""`gluteflow simulate`: produce a simulated device fleet into Kafka and write its ground truth."""

from __future__ import annotations

import typer

from infra import broker, topics
from jobs.console import console, fail, parse_date, paths_from


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate(
        ctx: typer.Context,
        runners: int = typer.Option(20, "--runners", "-n", min=1, help="Number of runners."),
        days: int = typer.Option(7, "--days", "-d", min=1, help="Number of local dates."),
        start: str = typer.Option(
            None, "--start", help="First local date YYYY-MM-DD (default: DAYS days ago)."
        ),
        seed: int = typer.Option(0, "--seed", help="Fleet seed: same seed and options -> identical data."),
        duration_scale: float = typer.Option(
            1.0, "--duration-scale", min=0.01, max=3.0, help="Multiply planned session durations (25-95 min)."
        ),
        block_s: int = typer.Option(
            1, "--block-seconds", min=1, max=10, help="Seconds of samples per block."
        ),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
        stories: bool = typer.Option(
            False,
            "--stories/--no-stories",
            help="Give runners r0000-r0004 the storylines of jobs/simulate/stories.py (a distance spike, "
            "rising calf dominance, pelvic drop, asymmetry, chronic glute under-activation).",
        ),
        via: str = typer.Option(
            None,
            "--via",
            help="Send through the gateway at this URL (e.g. http://127.0.0.1:8470) instead of to Kafka; "
            "devices are registered in this data dir's device store, which the gateway must share.",
        ),
        ca_cert: str = typer.Option(None, "--ca-cert", help="CA bundle to verify an https --via gateway."),
        via_batch: int = typer.Option(
            64,
            "--via-batch",
            min=1,
            help="With --via: events buffered before sending, one request per device. 1 keeps the exact order "
            "the direct producer sends in (one event per request, slow).",
        ),
    ) -> None:
        """Simulate N runners over D days: profiles, session markers, sensor blocks and watch records
        through the validating Publisher; truth Parquet under <data-dir>/truth."""
        from jobs.simulate import simulate_fleet

        paths = paths_from(ctx)
        first = parse_date(start, "--start")
        try:
            client = _gateway_client(via, ca_cert, paths, via_batch) if via else None
            bootstrap = None
            if client is None:
                bootstrap = broker.bootstrap_servers(paths)
                topics.apply(bootstrap)
            summary = simulate_fleet(
                bootstrap,
                paths,
                runners,
                days,
                first,
                seed,
                progress=progress,
                duration_scale=duration_scale,
                block_s=block_s,
                stories=stories,
                publisher=client,
            )
        except (broker.BrokerError, ValueError) as exc:
            fail(str(exc))
        except Exception as exc:  # the gateway refused or could not be reached
            if client is None:
                raise
            fail(f"through {via}: {type(exc).__name__}: {exc}")
        c = summary.counts
        console.print(
            f"[green]simulated[/] {summary.runners} runners x {summary.days} days: {summary.sessions} sessions, "
            f"{summary.simulated_s / 3600:,.1f} h of running"
        )
        console.print(
            f"produced {c.received:,} messages ({c.accepted:,} accepted, {c.dead_lettered:,} dead-lettered), "
            f"{summary.megabytes:,.1f} MB in {summary.wall_s:,.1f} s: "
            f"[bold]{summary.messages_per_s:,.0f} msg/s, {summary.mb_per_s:,.1f} MB/s, "
            f"{summary.realtime_factor:,.0f}x real time[/]"
        )
        console.print(
            f"device realities: {summary.dropped} dropped, {summary.duplicated} duplicated, "
            f"{summary.out_of_order} out-of-order data messages; truth in {summary.truth_dir}"
        )
        if not c.reconciles():
            fail("publish counts do not reconcile (received != accepted + dead-lettered)")


def _gateway_client(url: str, ca_cert: str | None, paths, batch: int):
    from gateway.client import GatewayClient
    from gateway.credentials import DeviceStore

    return GatewayClient(url, DeviceStore(paths.devices_db), max_events=batch, verify=ca_cert or True)
