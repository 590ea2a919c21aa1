"""The gateway's Prometheus metrics (prometheus_client), one registry per app so tests can run several."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: request latency buckets, seconds (loopback requests take milliseconds; a stalled broker tens of seconds)
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "gateway_requests",
            "HTTP requests by endpoint and status code",
            ["endpoint", "status"],
            registry=r,
        )
        self.refused = Counter(
            "gateway_refused_requests",
            "Requests refused whole, by reason (unauthorized, forbidden, rate_limited, ...)",
            ["reason"],
            registry=r,
        )
        self.accepted = Counter(
            "gateway_events_accepted", "Events published to their topic, by topic", ["topic"], registry=r
        )
        self.dead_lettered = Counter(
            "gateway_events_dead_lettered",
            "Inputs published as dead letters, by reason",
            ["reason"],
            registry=r,
        )
        self.body_bytes = Counter(
            "gateway_request_body_bytes", "Request body bytes read", ["endpoint"], registry=r
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "Time from request start to response start",
            ["endpoint"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.kafka_send_errors = Counter(
            "gateway_kafka_send_errors", "Records Kafka refused or did not acknowledge in time", registry=r
        )
        self.queued = Gauge(
            "gateway_kafka_queue_requests", "Requests waiting for their Kafka group commit", registry=r
        )
