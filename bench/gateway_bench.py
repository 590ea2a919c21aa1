"""Gateway load: N concurrent devices sending 1 s sensor blocks over loopback, against the direct producer.

One embedded broker, one ``gluteflow gateway`` process, one bench process driving N devices with
aiohttp's client (with httpx's async client the bench measured its own client: 90 requests/s
against the same gateway that answered 235/s to aiohttp, whose client used 0.7 s of CPU in 10 s). Each device sends one 1 s foot-IMU block (200 Hz,
6 channels) per request and its next block as soon as the previous one is answered (closed loop: the
gateway's capacity, not a paced trickle), for ``DURATION_S`` per N. Printed per N: sustained events/s
and MB/s of request bodies, p50/p99 request latency, refusals, the gateway's resident memory (current
and peak); then the direct validating Publisher (in this process) publishing the same blocks, and the
ratio gateway / direct measured in the same run. Run: ``python -m bench.gateway_bench``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np

from gateway.credentials import DeviceStore
from gateway.server import gateway_process
from gateway.wire import FRAMES_MEDIA_TYPE, frame
from infra import topics
from infra.broker import running_broker
from infra.publish import Publisher
from infra.settings import ENV_BOOTSTRAP, ENV_DATA_DIR, Paths
from pipelines.stream.synthetic import make_session
from schemas.codec import encode
from schemas.events import SensorBlock

DEVICES = (50, 200, 1000)
DURATION_S = 10.0
#: distinct pre-encoded 1 s blocks each device cycles through (encoding stays off the clock)
BODIES_PER_DEVICE = 4
#: a second load: 200 devices sending 10 s of blocks per request (a phone syncing), same closed loop
BATCHED = (200, 10)


@dataclass
class Round:
    devices: int
    blocks_per_request: int
    events: int
    body_bytes: int
    wall_s: float
    latencies_s: list[float]
    refused: dict[int, int]
    rss_mb: float
    peak_rss_mb: float

    def line(self) -> str:
        p50, p99 = (
            np.percentile(self.latencies_s, [50, 99]) * 1000 if self.latencies_s else (float("nan"),) * 2
        )
        refused = ", ".join(f"{k}: {v}" for k, v in sorted(self.refused.items())) or "none"
        return (
            f"{self.devices:>5} devices x {self.blocks_per_request:>2} blocks/request: "
            f"{self.events / self.wall_s:8,.0f} events/s "
            f"{self.body_bytes / self.wall_s / 1e6:6.1f} MB/s  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
            f"refused {refused}  gateway RSS {self.rss_mb:.0f} MB (peak {self.peak_rss_mb:.0f} MB)"
        )


def _template_blocks() -> list[SensorBlock]:
    start = int(time.time() * 1e6) - 3_600_000_000
    _, blocks, _ = make_session("r0000", "bench-s", start, duration_s=BATCHED[1] + 2, seed=1)
    return [b for b in blocks if b.device_id == "r0000.foot_left"][: BATCHED[1]]


def _device_blocks(template: list[SensorBlock], runner_id: str, device_id: str) -> list[SensorBlock]:
    out = []
    for i, b in enumerate(template):
        c = SensorBlock(**{**b.header_dict(), "channels": b.channels, "units": b.units})
        c.runner_id, c.device_id, c.session_id, c.seq = runner_id, device_id, f"{device_id}-s", i
        out.append(c)
    return out


def _memory_mb(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def _drive(
    url: str, devices: list[tuple[str, list[bytes]]], duration_s: float
) -> tuple[int, int, float, list, dict]:
    """Every device sends until ``duration_s`` is up (at least once); returns events, bytes, wall seconds
    (until the last answer), latencies of accepted requests and refusals by status."""
    events = size = 0
    latencies: list[float] = []
    refused: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=len(devices))
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=300)
    ) as session:
        stop_at = time.perf_counter() + duration_s

        async def device(token: str, bodies: list[bytes]) -> None:
            nonlocal events, size
            headers = {"Authorization": f"Bearer {token}", "Content-Type": FRAMES_MEDIA_TYPE}
            i = 0
            while True:
                body = bodies[i % len(bodies)]
                t0 = time.perf_counter()
                async with session.post(url + "/v1/sensor-blocks", data=body, headers=headers) as r:
                    answer = await r.json() if r.status == 200 else None
                if answer is not None:
                    latencies.append(time.perf_counter() - t0)
                    events += answer["accepted"]
                    size += len(body)
                else:
                    refused[r.status] = refused.get(r.status, 0) + 1
                i += 1
                if time.perf_counter() >= stop_at:
                    return

        started = time.perf_counter()
        await asyncio.gather(*(device(t, b) for t, b in devices))
        wall = time.perf_counter() - started
    return events, size, wall, latencies, refused


def _direct(bootstrap: str, blocks: list[SensorBlock]) -> tuple[float, float]:
    """The validating Publisher (same producer settings) publishing ``blocks``: events/s, MB/s."""
    with Publisher(bootstrap, "bench-direct") as pub:
        t0 = time.perf_counter()
        for b in blocks:
            pub.publish(b)
        pub.flush()
        wall = time.perf_counter() - t0
        return len(blocks) / wall, pub.counts.bytes_sent / wall / 1e6


def _register(store: DeviceStore, template: list[SensorBlock]) -> tuple[list, list, list[SensorBlock]]:
    """Tokens and pre-encoded bodies per device: single-block bodies for every device, one
    ``BATCHED[1]``-block body for the first ``BATCHED[0]``; and every block (for the direct producer)."""
    singles, batched, all_blocks = [], [], []
    for i in range(max(DEVICES)):
        runner, device = f"r{i // 2:04d}", f"r{i // 2:04d}.foot_{'left' if i % 2 == 0 else 'right'}"
        blocks = _device_blocks(template, runner, device)
        all_blocks += blocks
        token = store.register(runner, device)[1]
        singles.append((token, [frame([encode(b)]) for b in blocks[:BODIES_PER_DEVICE]]))
        if i < BATCHED[0]:
            batched.append((token, [frame(encode(b) for b in blocks)]))
    return singles, batched, all_blocks


def main() -> None:
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp, running_broker(Paths(Path(tmp) / "broker")) as info:
        data = Path(tmp) / "data"
        os.environ[topics.ENV_TOPIC_PREFIX] = f"bench-gw-{uuid.uuid4().hex[:6]}."
        topics.apply(info.bootstrap)
        env = {**os.environ, ENV_BOOTSTRAP: info.bootstrap, ENV_DATA_DIR: str(data)}
        t0 = time.perf_counter()
        singles, batched, all_blocks = _register(DeviceStore(Paths(data).devices_db), _template_blocks())
        print(f"{len(singles)} devices registered in {time.perf_counter() - t0:.1f} s (scrypt per token)")
        # uvicorn's cap counts connections and requests in progress: two per device
        args = ["--rate-limit", "1000/second", "--max-connections", str(2 * max(DEVICES) + 64)]
        rounds = []
        with gateway_process(env, data / "gateway.log", args) as gw:
            t0 = time.perf_counter()
            asyncio.run(_drive(gw.url, singles, 0.0))  # one request per device
            print(
                f"warm-up: one request per device in {time.perf_counter() - t0:.1f} s (first KDF check per token)"
            )
            loads = [(singles[:n], 1) for n in DEVICES] + [(batched, BATCHED[1])]
            for devices, per_request in loads:
                events, size, wall, latencies, refused = asyncio.run(_drive(gw.url, devices, DURATION_S))
                rss, peak = _memory_mb(gw.pid)
                rounds.append(
                    Round(len(devices), per_request, events, size, wall, latencies, refused, rss, peak)
                )
                print(rounds[-1].line(), flush=True)
        direct_eps, direct_mbs = _direct(info.bootstrap, all_blocks * 2)
        print(
            f"direct Publisher, same blocks: {direct_eps:8,.0f} events/s {direct_mbs:6.1f} MB/s (one process)"
        )
        for r in rounds:
            ratio = r.events / r.wall_s / direct_eps
            print(
                f"ratio gateway/direct, {r.devices:>4} devices x {r.blocks_per_request:>2} blocks/request: {ratio:.2f}"
            )


if __name__ == "__main__":
    main()
