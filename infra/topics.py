"""Topic declarations (infra/topics.yaml) and their idempotent application to a cluster."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

TOPICS_FILE = Path(__file__).with_name("topics.yaml")
#: optional namespace put before every topic name (tests use one per test on a shared broker)
ENV_TOPIC_PREFIX = "GLUTEFLOW_TOPIC_PREFIX"


@dataclass(frozen=True)
class TopicSpec:
    key: str
    name: str
    partitions: int
    cleanup_policy: str
    retention_ms: int
    doc: str = ""

    @property
    def configs(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


@cache
def declared() -> dict[str, TopicSpec]:
    """Topic specs by logical key (sensor_blocks, watch_records, sessions, runner_profiles, dead_letters, strides)."""
    doc = yaml.safe_load(TOPICS_FILE.read_text())
    return {key: TopicSpec(key=key, **spec) for key, spec in doc["topics"].items()}


def prefix() -> str:
    return os.environ.get(ENV_TOPIC_PREFIX, "")


def topic(key: str) -> str:
    """Topic name for a logical key, with the ``GLUTEFLOW_TOPIC_PREFIX`` namespace if set."""
    return prefix() + declared()[key].name


def apply(bootstrap: str) -> dict[str, str]:
    """Create missing topics; existing ones are left as they are. Returns {name: 'created'|'exists'}."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="gluteflow-topics")
    try:
        existing = set(admin.list_topics())
        result: dict[str, str] = {}
        for spec in declared().values():
            name = topic(spec.key)
            if name in existing:
                result[name] = "exists"
                continue
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name=name,
                            num_partitions=spec.partitions,
                            replication_factor=1,
                            topic_configs=spec.configs,
                        )
                    ]
                )
                result[name] = "created"
            except TopicAlreadyExistsError:
                result[name] = "exists"
        return result
    finally:
        admin.close()
