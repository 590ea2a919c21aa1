"""Simulator -> Kafka throughput vs a bare kafka-python producer sending the same bytes (one run).

``python -m bench.simulate_bench`` prints messages/s, MB/s and the real-time factor of
``simulate_fleet`` (synthesis + validation + encoding + producing through ``Publisher``), and the ratio
to a bare ``KafkaProducer`` (same config as ``infra.kafka_io.make_producer``) sending the identical
pre-encoded messages to the same topics, both against one embedded broker started here.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import tempfile
import time
from pathlib import Path

from infra import topics
from infra.broker import running_broker
from infra.kafka_io import make_producer
from infra.publish import TOPIC_KEY_BY_TYPE
from infra.settings import Paths
from jobs.simulate import draw_traits, plan_runner, profile_event, simulate_fleet
from jobs.simulate.fleet import iter_session_events
from schemas.codec import encode

RUNNERS, DAYS, SCALE, SEED = 6, 3, 0.25, 42  # ~30k messages: long enough that start-up costs do not dominate
START = dt.date(2025, 3, 3)


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _encoded_fleet() -> list[tuple[str, bytes, bytes]]:
    """(topic key, key, value) of every event the simulation produces, in the same order."""
    fleet = [draw_traits(SEED, i) for i in range(RUNNERS)]
    out = []
    profile_time = (
        int(dt.datetime.combine(START, dt.time(0), tzinfo=dt.UTC).timestamp() * 1e6) - 86_400_000_000
    )
    for tr in fleet:
        ev = profile_event(tr, profile_time)
        out.append((TOPIC_KEY_BY_TYPE[type(ev)], ev.key, encode(ev)))
    sessions = [(s, tr) for tr in fleet for s in plan_runner(tr, START, DAYS, SEED, SCALE)]
    sessions.sort(key=lambda x: (x[0].local_date, x[0].start_us, x[1].runner_id))
    seq: dict = {}
    for s, tr in sessions:
        for ev in iter_session_events(tr, s, seq):
            out.append((TOPIC_KEY_BY_TYPE[type(ev)], ev.key, encode(ev)))
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, running_broker(Paths(Path(tmp))) as info:
        bootstrap = info.bootstrap
        os.environ[topics.ENV_TOPIC_PREFIX] = "bench-sim."
        topics.apply(bootstrap)
        paths = Paths(Path(tmp) / "data").ensure()
        cpu0, child0 = time.process_time(), _children_cpu_s()
        s = simulate_fleet(bootstrap, paths, RUNNERS, DAYS, START, SEED, progress=False, duration_scale=SCALE)
        sim_cpu_s = time.process_time() - cpu0
        sim_child_cpu_s = _children_cpu_s() - child0  # the producer child process (waited for on close)
        msgs = _encoded_fleet()
        assert len(msgs) == s.messages, (len(msgs), s.messages)
        os.environ[topics.ENV_TOPIC_PREFIX] = "bench-bare."
        topics.apply(bootstrap)
        names = {k: topics.topic(k) for k in TOPIC_KEY_BY_TYPE.values()}
        producer = make_producer(bootstrap, client_id="bench-bare")
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for key_name, key, value in msgs:
            producer.send(names[key_name], key=key, value=value)
        producer.flush()
        bare_s = time.perf_counter() - t0
        bare_cpu_s = time.process_time() - cpu0
        producer.close()
        os.environ.pop(topics.ENV_TOPIC_PREFIX, None)
    nbytes = sum(len(v) for _, _, v in msgs)
    bare_mb_s = nbytes / 1e6 / bare_s
    bare_msg_s = len(msgs) / bare_s
    print(
        f"fleet: {RUNNERS} runners x {DAYS} days, duration scale {SCALE}, {s.sessions} sessions, "
        f"{s.simulated_s / 3600:.2f} h simulated"
    )
    print(
        f"simulator -> Kafka: {s.messages:,} msgs, {s.megabytes:,.1f} MB in {s.wall_s:.2f} s = "
        f"{s.messages_per_s:,.0f} msg/s, {s.mb_per_s:,.1f} MB/s, {s.realtime_factor:,.0f}x real time"
    )
    total = sim_cpu_s + sim_child_cpu_s
    print(
        f"  simulator CPU {total:.2f} s = {total / s.messages * 1e6:,.0f} us/msg (main process "
        f"{sim_cpu_s:.2f} s: synthesis, validation, encoding; producer child {sim_child_cpu_s:.2f} s)"
    )
    print(f"bare producer, same bytes: {bare_s:.2f} s = {bare_msg_s:,.0f} msg/s, {bare_mb_s:,.1f} MB/s")
    print(f"  bare producer process CPU {bare_cpu_s:.2f} s ({bare_cpu_s / len(msgs) * 1e6:,.0f} us/msg)")
    print(f"ratio simulator / bare producer: {s.mb_per_s / bare_mb_s:.2f} (MB/s)")


if __name__ == "__main__":
    main()
