"""`gluteflow gateway` (the device ingest HTTP service) and `gluteflow devices register|list|revoke`."""

from __future__ import annotations

import datetime as dt

import typer
from rich.table import Table

from infra import broker, topics
from jobs.console import console, fail, paths_from


def register(app: typer.Typer) -> None:
    devices_app = typer.Typer(
        help="Device credentials for the gateway (tokens, stored hashed).", no_args_is_help=True
    )
    app.add_typer(devices_app, name="devices")

    @app.command("gateway")
    def gateway(
        ctx: typer.Context,
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default loopback only)."),
        port: int = typer.Option(8470, "--port", "-p", help="TCP port."),
        certfile: str = typer.Option(
            None, "--tls-cert", help="PEM certificate: serve HTTPS (with --tls-key)."
        ),
        keyfile: str = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
        max_body: int = typer.Option(
            1024 * 1024, "--max-body-bytes", help="Largest frames body (413 above)."
        ),
        max_fit: int = typer.Option(
            16 * 1024 * 1024, "--max-fit-bytes", help="Largest FIT upload (413 above)."
        ),
        rate: str = typer.Option(
            "20/second", "--rate-limit", help="Requests per device, e.g. 20/second or 600/minute (429 above)."
        ),
        publish_timeout: float = typer.Option(
            10.0, "--publish-timeout", help="Seconds to wait for Kafka before answering 503."
        ),
        max_queued: int = typer.Option(256, "--max-queued", help="Requests waiting for Kafka before 503."),
        max_connections: int = typer.Option(
            4096,
            "--max-connections",
            help="Open connections plus requests in progress (uvicorn answers 503 above): a device "
            "with a request in progress counts twice.",
        ),
    ) -> None:
        """Serve the device ingest gateway (HTTP, or HTTPS with --tls-cert/--tls-key) in front of Kafka."""
        from gateway.app import GatewayConfig
        from gateway.server import serve

        if bool(certfile) != bool(keyfile):
            fail("--tls-cert and --tls-key go together")
        paths = paths_from(ctx)
        try:
            # the embedded defaults: a running broker (or KAFKA_BOOTSTRAP_SERVERS), else Tansu started
            # here and stopped when the gateway stops
            with broker.running_broker(paths) as info:
                topics.apply(info.bootstrap)
                cfg = GatewayConfig(
                    bootstrap=info.bootstrap,
                    max_body_bytes=max_body,
                    max_fit_bytes=max_fit,
                    rate_limit=rate,
                    publish_timeout_s=publish_timeout,
                    max_queued_requests=max_queued,
                )
                scheme = "https" if certfile else "http"
                started = " (embedded Tansu, started for this gateway)" if info.started_here else ""
                console.print(f"[green]gateway[/] {scheme}://{host}:{port}  Kafka {info.bootstrap}{started}")
                console.print(f"devices: {paths.devices_db}   OpenAPI: /docs   metrics: /metrics")
                serve(cfg, paths.devices_db, host, port, certfile, keyfile, max_connections)
        except KeyboardInterrupt:  # Ctrl-C after uvicorn's graceful stop; the broker (if ours) is stopped
            console.print("gateway stopped")
        except broker.BrokerError as exc:
            fail(str(exc))
        except Exception as exc:  # NoBrokersAvailable, a port in use, a bad certificate
            fail(f"gateway failed: {type(exc).__name__}: {exc}")

    @devices_app.command("register")
    def devices_register(
        ctx: typer.Context,
        runner: str = typer.Option(..., "--runner", help="Runner id the token may send for."),
        device: str = typer.Option(..., "--device", help="Device id the token may send for."),
    ) -> None:
        """Create a token for one device of one runner and print it once (only its salted hash is stored)."""
        from gateway.credentials import CredentialError, DeviceStore

        try:
            cred, token = DeviceStore(paths_from(ctx).devices_db).register(runner, device)
        except CredentialError as exc:
            fail(str(exc))
        console.print(
            f"registered device {cred.device_id} of runner {cred.runner_id} (token id {cred.token_id})"
        )
        console.print("token (shown once, store it on the device):", style="bold")
        print(token)

    @devices_app.command("list")
    def devices_list(
        ctx: typer.Context, active: bool = typer.Option(False, "--active", help="Only tokens not revoked.")
    ) -> None:
        """Registered devices and their tokens' state (never the tokens)."""
        from gateway.credentials import DeviceStore

        table = Table("token id", "runner", "device", "created (UTC)", "revoked (UTC)")
        # ids are at most 64 chars of a plain alphabet: never fold them (they are copied into commands)
        for column in table.columns[:3]:
            column.no_wrap = True
        for c in DeviceStore(paths_from(ctx).devices_db).list(include_revoked=not active):
            table.add_row(c.token_id, c.runner_id, c.device_id, _utc(c.created_at), _utc(c.revoked_at) or "-")
        console.print(table)

    @devices_app.command("revoke")
    def devices_revoke(
        ctx: typer.Context,
        device: str = typer.Option(None, "--device", help="Revoke every token of this device."),
        token_id: str = typer.Option(None, "--token-id", help="Revoke this token."),
    ) -> None:
        """Revoke tokens: the gateway refuses them (401) from the next request on."""
        from gateway.credentials import CredentialError, DeviceStore

        try:
            n = DeviceStore(paths_from(ctx).devices_db).revoke(device_id=device, token_id=token_id)
        except CredentialError as exc:
            fail(str(exc))
        if n == 0:
            fail("no active token matched")
        console.print(f"revoked {n} token(s)")


def _utc(ts: float | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
