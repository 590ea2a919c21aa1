"""Run the gateway: the app on uvicorn, its Publisher configured for group commits."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from gateway.app import STAGE, Gateway, GatewayConfig, create_app
from gateway.credentials import DeviceStore
from infra.broker import free_port, wait_until
from infra.kafka_io import MAX_MESSAGE_BYTES
from infra.publish import Publisher

#: producer settings for group commits (gateway/committer.py): records leave only at the group's flush,
#: one batch per partition in one produce request (batch and request sizes above the group size)
GROUP_COMMIT_PRODUCER = dict(
    linger_ms=20_000,  # never reached: every group ends with a flush
    batch_size=MAX_MESSAGE_BYTES,
    max_request_size=MAX_MESSAGE_BYTES,
    max_block_ms=5_000,  # send() waits at most this long for metadata of an unreachable broker
    request_timeout_ms=10_000,
    delivery_timeout_ms=35_000,  # kafka-python requires > linger + request timeout
)


def build_app(cfg: GatewayConfig, devices_db: Path):
    """The ASGI app with its Publisher (connects to Kafka now: fails fast when it is unreachable)."""
    publisher = Publisher(cfg.bootstrap, STAGE, **GROUP_COMMIT_PRODUCER)
    return create_app(Gateway(cfg, publisher, DeviceStore(devices_db)))


def serve(
    cfg: GatewayConfig,
    devices_db: Path,
    host: str = "127.0.0.1",
    port: int = 8470,
    certfile: str | None = None,
    keyfile: str | None = None,
    max_connections: int = 4096,
) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM: uvicorn stops accepting, the app commits what is queued).

    uvicorn re-raises the signal it caught once it has stopped; SIGTERM then raises SystemExit here (and
    Ctrl-C KeyboardInterrupt) instead of ending the process, so the caller's cleanup (a broker it started)
    still runs."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    app = build_app(cfg, devices_db)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        limit_concurrency=max_connections,  # connections + tasks; beyond it uvicorn answers 503
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)


@dataclass
class GatewayProcess:
    url: str
    pid: int
    log_file: Path


@contextlib.contextmanager
def gateway_process(
    env: dict[str, str],
    log_file: Path,
    args: Sequence[str] = (),
    timeout_s: float = 60.0,
    scheme: str = "http",
    verify: bool | str = True,
) -> Iterator[GatewayProcess]:
    """Run ``gluteflow gateway`` in a child process on a free loopback port until the block exits.

    Ready once ``/v1/health`` answers 200; on exit it gets SIGTERM (uvicorn's graceful stop: the queued
    requests are committed) and SIGKILL if it outlives ``timeout_s``."""
    port = free_port()
    url = f"{scheme}://127.0.0.1:{port}"  # https when ``args`` name --tls-cert/--tls-key
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", "gateway", "--port", str(port), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                tail = log_file.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"gateway exited with code {proc.returncode}:\n{tail}")
            try:
                return httpx.get(f"{url}/v1/health", timeout=5.0, verify=verify).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout_s, interval_s=0.2, what=f"the gateway at {url}")
        yield GatewayProcess(url, proc.pid, log_file)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
