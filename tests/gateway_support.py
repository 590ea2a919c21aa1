"""Helpers for the gateway tests: a gateway process on the real broker, devices, blocks, topic reads."""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.credentials import DeviceStore
from gateway.server import gateway_process
from gateway.wire import FRAMES_MEDIA_TYPE, frame
from infra import topics
from infra.kafka_io import end_offsets, make_consumer, read_partition
from infra.settings import ENV_BOOTSTRAP, ENV_DATA_DIR, Paths
from pipelines.stream.synthetic import make_session
from schemas.codec import decode, encode
from schemas.events import SensorBlock


@dataclass
class Gw:
    url: str
    pid: int
    bootstrap: str
    data: Path
    env: dict[str, str]
    store: DeviceStore
    tokens: dict[str, str] = field(default_factory=dict)
    verify: bool | str = True

    def device(self, runner_id: str, device_id: str) -> str:
        """Register (runner, device) and return its token."""
        token = self.store.register(runner_id, device_id)[1]
        self.tokens[device_id] = token
        return token

    def post(
        self, path: str, body: bytes, token: str | None, ctype: str = FRAMES_MEDIA_TYPE
    ) -> httpx.Response:
        headers = {"Content-Type": ctype}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(self.url + path, content=body, headers=headers, timeout=60.0, verify=self.verify)

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics: ``name{labels}`` -> value."""
        text = httpx.get(self.url + "/metrics", timeout=10.0, verify=self.verify).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                out[key] = float(value)
        return out


@contextlib.contextmanager
def running_gateway(
    bootstrap: str, data: Path, args: list[str], scheme: str = "http", verify: bool | str = True
) -> Iterator[Gw]:
    """Own topic namespace and data dir, topics applied, a gateway process serving them."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    env = {**os.environ, ENV_BOOTSTRAP: bootstrap, ENV_DATA_DIR: str(data), topics.ENV_TOPIC_PREFIX: prefix}
    saved = {k: os.environ.get(k) for k in (ENV_BOOTSTRAP, ENV_DATA_DIR, topics.ENV_TOPIC_PREFIX)}
    os.environ.update({k: env[k] for k in saved})  # topic names in this process follow the gateway's
    try:
        topics.apply(bootstrap)
        store = DeviceStore(Paths(data).devices_db)
        with gateway_process(env, data / "gateway.log", args, scheme=scheme, verify=verify) as proc:
            yield Gw(proc.url, proc.pid, bootstrap, data, env, store, verify=verify)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def blocks_for(runner_id: str, device: str = "foot_left", n: int = 4, seed: int = 0) -> list[SensorBlock]:
    """``n`` real-looking 1 s sensor blocks of one device (``<runner>.<device>``), an hour ago."""
    start = int(time.time() * 1e6) - 3_600_000_000
    _, blocks, _ = make_session(runner_id, f"{runner_id}-s{seed}", start, duration_s=max(n + 1, 5), seed=seed)
    mine = [b for b in blocks if b.device_id == f"{runner_id}.{device}"]
    return mine[:n]


def body_of(events) -> bytes:
    return frame(encode(e) for e in events)


def topic_events(bootstrap: str, key: str) -> list:
    """Every message of a topic of this namespace, decoded."""
    name = topics.topic(key)
    consumer = make_consumer(bootstrap)
    try:
        out = []
        for part, end in end_offsets(bootstrap, name, consumer).items():
            out += [decode(v) for _, _, v in read_partition(consumer, name, part, 0, end)]
        return out
    finally:
        consumer.close()


def of_device(events, device_id: str) -> list:
    return [e for e in events if e.device_id == device_id]


def metric(samples: dict[str, float], name: str, **labels: str) -> float:
    """One sample's value (0 when absent); labels match as given."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for key, value in samples.items():
        m = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})?", key)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == want:
            return value
    return 0.0
