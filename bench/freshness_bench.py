"""Freshness: how long after its samples reach Kafka is a stride row queryable in the lake?

A live fleet (default 20 runners, the embedded default, for 90 s) sends each 1 s sensor block the
moment it is complete, as a device streaming through its phone would. ``gluteflow stream`` runs as
its own process, exactly as deployed. A poller queries the lake's strides with DuckDB every second
and notes when each stride first appears. A stride's latency = first seen - the send time of the
block that holds its last sample (its next initial contact, on its own foot's sensor). Prints the
median, 95th percentile and maximum (target: about two minutes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
import numpy as np

from bench.periodic import Periodic
from infra import topics
from infra.broker import running_broker
from infra.kafka_io import make_producer
from infra.settings import ENV_BOOTSTRAP, ENV_DATA_DIR, Paths
from pipelines.stream.synthetic import make_session
from schemas.codec import encode

N_RUNNERS = int(os.environ.get("FRESHNESS_BENCH_RUNNERS", "20"))
DURATION_S = int(os.environ.get("FRESHNESS_BENCH_SECONDS", "90"))
TARGET_S = 120.0


class LakePoller:
    """``poll()``: the stride ids DuckDB can read from the lake, with the time first seen (run it every
    ``period_s`` with :class:`bench.periodic.Periodic`)."""

    def __init__(self, strides_dir: Path, period_s: float = 1.0):
        self.glob = str(strides_dir / "**" / "*.parquet")
        self.strides_dir = strides_dir
        self.period_s = period_s
        self.first_seen: dict[str, tuple[float, str, str, int]] = {}

    def poll(self) -> None:
        if not any(self.strides_dir.rglob("*.parquet")):
            return
        now = time.time()
        with duckdb.connect() as con:
            rows = con.execute(
                f"SELECT stride_id, runner_id, foot, epoch_us(next_ic_time) FROM read_parquet('{self.glob}')"
            ).fetchall()
        for sid, runner, foot, next_ic in rows:
            self.first_seen.setdefault(sid, (now, runner, foot, next_ic))


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="freshness-bench-"))
    prefix = f"fresh{uuid.uuid4().hex[:6]}."
    os.environ[topics.ENV_TOPIC_PREFIX] = prefix
    with running_broker(Paths(tmp / "broker")) as info:  # KAFKA_BOOTSTRAP_SERVERS, or Tansu started here
        bootstrap = info.bootstrap
        topics.apply(bootstrap)
        t0 = (time.time_ns() // 1000 // 1_000_000 + 2) * 1_000_000  # next whole second, us
        sessions = [
            make_session(f"r{r:03d}", f"r{r:03d}-live", t0, DURATION_S, seed=r) for r in range(N_RUNNERS)
        ]
        data = tmp / "data"
        env = {**os.environ, ENV_BOOTSTRAP: bootstrap, ENV_DATA_DIR: str(data)}
        job = subprocess.Popen(
            [str(Path(sys.executable).with_name("gluteflow")), "stream", "--until-idle", "15"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        producer = make_producer(bootstrap, linger_ms=5)
        for _, _, markers in sessions:
            producer.send(topics.topic("sessions"), key=markers[0].key, value=encode(markers[0]))
        pending = sorted(
            (
                (b.end_time_us, i, j, b)
                for i, (_, blocks, _) in enumerate(sessions)
                for j, b in enumerate(blocks)
            ),
            key=lambda x: x[:3],
        )
        sent: dict[tuple[str, str], list[tuple[int, int, float]]] = {}  # (runner, foot) -> blocks
        poller = LakePoller(Paths(data).table("strides"))
        with Periodic(poller.poll, poller.period_s):
            k = 0
            while k < len(pending):
                now_us = time.time_ns() // 1000
                batch = []
                while k < len(pending) and pending[k][0] <= now_us:
                    batch.append(pending[k][3])
                    k += 1
                for b in batch:
                    producer.send(topics.topic("sensor_blocks"), key=b.key, value=encode(b))
                producer.flush()
                sent_at = time.time()
                for b in batch:
                    if b.sensor == "foot_imu":
                        sent.setdefault((b.runner_id, b.side), []).append(
                            (b.start_time_us, b.end_time_us, sent_at)
                        )
                if k < len(pending):
                    time.sleep(max(0.0, (pending[k][0] - time.time_ns() // 1000) / 1e6))
            for _, _, markers in sessions:
                producer.send(topics.topic("sessions"), key=markers[1].key, value=encode(markers[1]))
            producer.flush()
            producer.close()
            _, err = job.communicate(timeout=600)
        if job.returncode != 0:
            raise RuntimeError(f"stream job failed ({job.returncode}): {err[-2000:]}")
        latencies = []
        for _sid, (seen, runner, foot, next_ic) in poller.first_seen.items():
            block = next((s for s in sent.get((runner, foot), []) if s[0] <= next_ic < s[1]), None)
            if block is not None:
                latencies.append(seen - block[2])
        lat = np.array(latencies)
        print(
            f"live fleet: {N_RUNNERS} runners x {DURATION_S} s, foot 200 Hz + pelvis/EMG 100 Hz in 1 s blocks,"
            f" sent as each block completes; strides queried with DuckDB every {poller.period_s:g} s"
        )
        print(f"strides seen: {len(poller.first_seen)}, with their last block located: {len(lat)}")
        if len(lat):
            print(
                f"latency from last sample's block sent to row queryable: median {np.median(lat):.1f} s,"
                f" p95 {np.percentile(lat, 95):.1f} s, max {lat.max():.1f} s;"
                f" within {TARGET_S:.0f} s: {np.mean(lat <= TARGET_S):.1%} (target: about two minutes)"
            )


if __name__ == "__main__":
    main()
