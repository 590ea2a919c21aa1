"""Apache Kafka itself: a single-node KRaft broker from the jars `make kafka` fetched from Maven Central.

The embedded default is Tansu (:mod:`infra.broker`); this runs the real thing where a test or a user
wants it (``GLUTEFLOW_TEST_BROKER=apache-kafka`` in the test suite). :func:`start` writes a
``server.properties`` for a free loopback port, formats the storage with Kafka's own
``kafka.tools.StorageTool`` and starts ``kafka.Kafka`` in its own process group; :func:`stop` stops
exactly that group and the storage directory is left for the caller to delete.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from infra import procs
from infra.broker import BrokerError, answers_metadata, free_port, terminate_group, wait_until
from infra.kafka_io import MAX_MESSAGE_BYTES

REPO = Path(__file__).resolve().parents[1]
ENV_KAFKA_LIB = "GLUTEFLOW_KAFKA_LIB"  # a folder of Kafka broker jars (default: .cache/kafka/lib)
DEFAULT_LIB = REPO / ".cache" / "kafka" / "lib"
LOG_CONFIG = REPO / "infra" / "java" / "kafka" / "log4j2.properties"
JVM_OPTS = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true")


class KafkaUnavailable(BrokerError):
    """Java or the Kafka jars are missing (the message says which and how to get them)."""


@dataclass(frozen=True)
class ApacheKafka:
    bootstrap: str
    pid: int
    work_dir: Path

    @property
    def log_file(self) -> Path:
        return self.work_dir / "kafka.log"


def kafka_lib() -> Path:
    """The folder of broker jars, or :class:`KafkaUnavailable` saying what to do."""
    if shutil.which("java") is None:
        raise KafkaUnavailable("no `java` on PATH: Apache Kafka needs a Java 17+ runtime")
    lib = Path(os.environ.get(ENV_KAFKA_LIB) or DEFAULT_LIB)
    if not any(lib.glob("kafka_2.13-*.jar")):
        raise KafkaUnavailable(f"no kafka_2.13 jar in {lib}: run `make kafka` (Maven fetches it)")
    return lib


def _java(lib: Path, main: str, *args: str) -> list[str]:
    return ["java", *JVM_OPTS, f"-Dlog4j2.configurationFile={LOG_CONFIG}", "-cp", f"{lib}/*", main, *args]


def server_properties(work_dir: Path, port: int, controller_port: int) -> str:
    """One process as broker and controller on loopback; replication 1; topics created by gluteflow."""
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={work_dir / 'data'}",
            "num.partitions=6",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=3",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            f"message.max.bytes={MAX_MESSAGE_BYTES}",
            f"replica.fetch.max.bytes={MAX_MESSAGE_BYTES}",
            "",
        ]
    )


def start(work_dir: Path, timeout_s: float = 90.0, die_with_parent: bool = True) -> ApacheKafka:
    """Format fresh KRaft storage under ``work_dir`` and start the broker; returns once it answers
    Kafka metadata. ``die_with_parent``: the JVM is killed when this process dies (SIGKILL included)."""
    lib = kafka_lib()
    work_dir.mkdir(parents=True, exist_ok=True)
    port, controller_port = free_port(), free_port()
    props = work_dir / "server.properties"
    props.write_text(server_properties(work_dir, port, controller_port))
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    fmt = subprocess.run(
        _java(lib, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if fmt.returncode != 0:
        raise BrokerError(
            f"kafka-storage format failed ({fmt.returncode}): {(fmt.stdout + fmt.stderr)[-800:]}"
        )
    preexec = functools.partial(procs.die_with_parent, os.getpid()) if die_with_parent else None
    log_file = work_dir / "kafka.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            _java(lib, "kafka.Kafka", str(props)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=preexec,
        )
    broker = ApacheKafka(bootstrap=f"127.0.0.1:{port}", pid=proc.pid, work_dir=work_dir)

    def up() -> bool:
        if proc.poll() is not None:
            tail = log_file.read_text(errors="replace")[-1500:]
            raise BrokerError(f"Apache Kafka exited with code {proc.returncode}: {tail}")
        return answers_metadata(broker.bootstrap, 2.0)

    try:
        wait_until(up, timeout_s, 0.2, f"Apache Kafka on {broker.bootstrap} to answer Kafka metadata")
    except BaseException:
        terminate_group(proc.pid, grace_s=10.0)
        raise
    return broker


def stop(broker: ApacheKafka, grace_s: float = 15.0) -> None:
    """SIGTERM the broker's process group (a clean KRaft shutdown), SIGKILL after ``grace_s``."""
    terminate_group(broker.pid, grace_s=grace_s)


@contextlib.contextmanager
def running(work_dir: Path) -> Iterator[ApacheKafka]:
    """A broker for the duration of the ``with`` block."""
    broker = start(work_dir)
    try:
        yield broker
    finally:
        stop(broker)
