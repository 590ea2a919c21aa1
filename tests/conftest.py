"""Shared fixtures: one real embedded broker per test session, a fresh topic namespace and data dir per test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from infra import broker, topics
from infra.settings import ENV_BOOTSTRAP, ENV_DATA_DIR, Paths

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"


def fixtures_dir(sub: str) -> Path:
    """``../shared/fixtures/<sub>``, or skip the test with the reason."""
    path = FIXTURES / sub
    if not path.exists():
        pytest.skip(f"{path} not found: this test needs the real device data in ../shared/fixtures/{sub}")
    return path


ENV_TEST_BROKER = "GLUTEFLOW_TEST_BROKER"  # "tansu" (default) or "apache-kafka": the broker the suite starts


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The real Kafka broker for the whole session: KAFKA_BOOTSTRAP_SERVERS, or one started here
    (Tansu, or Apache Kafka with GLUTEFLOW_TEST_BROKER=apache-kafka)."""
    if os.environ.get(ENV_BOOTSTRAP):
        yield os.environ[ENV_BOOTSTRAP]
        return
    if os.environ.get(ENV_TEST_BROKER, "tansu") == "apache-kafka":
        yield from _apache_kafka(tmp_path_factory)
        return
    paths = Paths(tmp_path_factory.mktemp("broker"))
    info = broker.start(paths, die_with_parent=True)
    try:
        yield info.bootstrap
    finally:
        broker.stop(paths)


def _apache_kafka(tmp_path_factory: pytest.TempPathFactory):
    """Apache Kafka (KRaft, single node) from the jars `make kafka` fetched; fails, saying what is missing,
    when the profile asks for it and it cannot start (a silent fallback to Tansu would hide that)."""
    from infra import apache_kafka

    with apache_kafka.running(tmp_path_factory.mktemp("apache-kafka")) as broker_:
        yield broker_.bootstrap


@pytest.fixture(scope="session")
def apache_kafka_bootstrap(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Apache Kafka for tests about it: the suite's broker under the apache-kafka profile, otherwise one
    started for these tests; skips, saying why, without Java or the jars."""
    from infra import apache_kafka

    if os.environ.get(ENV_TEST_BROKER) == "apache-kafka" and not os.environ.get(ENV_BOOTSTRAP):
        yield kafka_bootstrap
        return
    try:
        apache_kafka.kafka_lib()
    except apache_kafka.KafkaUnavailable as exc:
        pytest.skip(str(exc))
    with apache_kafka.running(tmp_path_factory.mktemp("apache-kafka")) as broker_:
        yield broker_.bootstrap


@pytest.fixture
def kafka(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Bootstrap address with this test's own topics (a unique GLUTEFLOW_TOPIC_PREFIX), applied."""
    monkeypatch.setenv(topics.ENV_TOPIC_PREFIX, f"t{uuid.uuid4().hex[:10]}.")
    monkeypatch.setenv(ENV_BOOTSTRAP, kafka_bootstrap)
    topics.apply(kafka_bootstrap)
    return kafka_bootstrap


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A fresh data directory for this test (also exported as GLUTEFLOW_DATA_DIR)."""
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "data"))
    return Paths(tmp_path / "data").ensure()
