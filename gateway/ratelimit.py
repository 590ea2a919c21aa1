"""Per-device rate limit: a token bucket per device, in the gateway's memory.

The limit is written in the ``limits`` package's notation (``20/second``, ``600/minute``; parsed by
``limits.parse``): a device may send ``amount`` requests at once, refilled at ``amount`` per period.
A refused request is told when the next token arrives (``Retry-After``).

Why not ``limits``' own in-memory storage: it starts a ``threading.Timer`` every 10 ms while requests
arrive and each timer sweeps every key, and its moving window keeps one entry per hit; under the bench
load a hit cost ~0.9 ms of the gateway's ~2 ms per request (docs/gateway.md). A bucket is two numbers per
device and O(1) per request; only authenticated devices reach it, so it grows with registered devices.
"""

from __future__ import annotations

import threading
import time

from limits import parse


class DeviceRateLimit:
    """``hit(device)`` -> seconds to wait (0.0: allowed, and counted)."""

    def __init__(self, rate: str):
        item = parse(rate)
        self.capacity = float(item.amount)
        self.per_s = item.amount / item.get_expiry()
        self._buckets: dict[str, tuple[float, float]] = {}  # device -> (tokens, at monotonic time)
        self._lock = threading.Lock()

    def hit(self, device_id: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._buckets.get(device_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.per_s)
            if tokens >= 1.0:
                self._buckets[device_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[device_id] = (tokens, now)
            return (1.0 - tokens) / self.per_s
