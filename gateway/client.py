"""Send events through a gateway as their devices would: the Publisher's interface over HTTP.

:class:`GatewayClient` has ``publish(event)``, ``flush()``, ``close()`` and reconciling ``counts`` like
:class:`~infra.publish.Publisher`, so the simulator can produce through the front door unchanged. Events
are encoded with the project's codec (the bytes the direct producer would send) and buffered in the
order they come; every ``max_events`` events (or ``max_body_bytes``) the buffer is sent as one request
per device, each device's events in order. The buffer spans a few seconds of a runner's data, well
inside the stream job's allowed lateness, so a device's blocks arrive in order and the devices of one
runner at most that far apart.

Tokens come from the gateway's device store (``Paths.devices_db``): a device is registered on first use,
as ``gluteflow devices register`` would, so the client must share the gateway's data directory.

A 429 or 503 is retried after the server's ``Retry-After`` (the HTTP contract for both), for at most
``retry_for_s``; any other refusal raises :class:`GatewayError` with the server's reason.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from gateway.credentials import DeviceStore
from gateway.wire import FRAMES_MEDIA_TYPE, frame
from infra.publish import PublishCounts
from schemas.codec import encode
from schemas.events import Event, SensorBlock

SENSOR_PATH = "/v1/sensor-blocks"
RECORDS_PATH = "/v1/records"


class GatewayError(RuntimeError):
    """The gateway refused a request for a reason a retry does not fix (or kept refusing)."""


def endpoint_of(event: Event) -> str:
    return SENSOR_PATH if isinstance(event, SensorBlock) else RECORDS_PATH


@dataclass
class _Pending:
    """Encoded events waiting to be sent, grouped per (runner, device, endpoint) in arrival order."""

    groups: dict[tuple[str, str, str], list[bytes]] = field(default_factory=dict)
    events: int = 0
    size: int = 0


class GatewayClient:
    """Publisher-like sender through a gateway (see module docstring)."""

    def __init__(
        self,
        base_url: str,
        store: DeviceStore,
        max_events: int = 64,
        max_body_bytes: int = 512 * 1024,
        retry_for_s: float = 120.0,
        verify: bool | str = True,
        concurrency: int = 4,
    ):
        self.base_url = base_url.rstrip("/")
        self.store = store
        self.max_events, self.max_body_bytes, self.retry_for_s = max_events, max_body_bytes, retry_for_s
        self.counts = PublishCounts()
        self.requests = 0
        self.retries = 0
        self._tokens: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()  # counts and tokens, written by the sending threads
        self._pending = _Pending()
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._http = httpx.Client(base_url=self.base_url, timeout=60.0, verify=verify, limits=limits)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="gateway-client")

    def token(self, runner_id: str, device_id: str) -> str:
        key = (runner_id, device_id)
        with self._lock:
            if key not in self._tokens:
                self._tokens[key] = self.store.register(runner_id, device_id)[1]
            return self._tokens[key]

    def publish(self, event: Event) -> None:
        """Queue ``event`` (validated by the gateway when its request is sent)."""
        data = encode(event)
        key = (event.runner_id, event.device_id, endpoint_of(event))
        p = self._pending
        group = p.groups.get(key)
        if (
            group is not None
            and sum(map(len, group)) + len(data) + 4 * (len(group) + 1) > self.max_body_bytes
        ):
            self.flush()
        self._pending.groups.setdefault(key, []).append(data)
        self._pending.events += 1
        if self._pending.events >= self.max_events:
            self.flush()

    def flush(self) -> None:
        """Send everything queued: one request per device (devices in parallel, each in order)."""
        pending, self._pending = self._pending, _Pending()
        jobs = [self._pool.submit(self._send, key, msgs) for key, msgs in pending.groups.items()]
        for job in jobs:
            job.result()

    def _send(self, key: tuple[str, str, str], messages: list[bytes]) -> None:
        runner_id, device_id, path = key
        body = frame(messages)
        headers = {
            "Authorization": f"Bearer {self.token(runner_id, device_id)}",
            "Content-Type": FRAMES_MEDIA_TYPE,
        }
        deadline = time.monotonic() + self.retry_for_s
        while True:
            r = self._http.post(path, content=body, headers=headers)
            if r.status_code in (429, 503) and time.monotonic() < deadline:
                with self._lock:
                    self.retries += 1
                time.sleep(float(r.headers.get("Retry-After", "1")))  # the server says when
                continue
            if r.status_code != 200:
                raise GatewayError(f"{path} for {device_id}: HTTP {r.status_code} {r.text[:400]}")
            self._count(r.json(), len(messages), len(body))
            return

    def _count(self, result: dict, sent: int, size: int) -> None:
        with self._lock:
            self._count_locked(result, sent, size)

    def _count_locked(self, result: dict, sent: int, size: int) -> None:
        c = self.counts
        self.requests += 1
        c.received += sent
        c.accepted += result["accepted"]
        c.dead_lettered += result["dead_lettered"]
        c.bytes_sent += size
        for letter in result["dead_letters"]:
            c.by_reason[letter["reason"]] += 1

    def close(self) -> PublishCounts:
        try:
            self.flush()
        finally:
            self._pool.shutdown()
            self._http.close()
        return self.counts

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
