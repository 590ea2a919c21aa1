"""The gateway when Kafka stalls: a broker paused mid-request (SIGSTOP on the real Tansu process) gets 503
with Retry-After and the request is all or nothing in the topic; the retry is accepted and its
duplicates are visible by sequence number. And the gateway over TLS."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest
from gateway_support import blocks_for, body_of, metric, of_device, running_gateway, topic_events

from infra import broker
from infra.settings import ENV_BOOTSTRAP, Paths


@pytest.fixture
def own_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A Tansu of this test's own, so pausing it stalls nothing else."""
    monkeypatch.delenv(ENV_BOOTSTRAP, raising=False)
    paths = Paths(tmp_path / "broker")
    info = broker.start(paths, die_with_parent=True)
    try:
        yield info
    finally:
        with contextlib.suppress(ProcessLookupError):  # a test may have killed it
            os.killpg(info.pid, signal.SIGCONT)
        broker.stop(paths)


def _idle(url: str) -> bool:
    """Broker reachable and no request queued for or in a Kafka commit."""
    r = httpx.get(url + "/v1/health", timeout=10)
    h = r.json()
    return r.status_code == 200 and h["queued_requests"] == 0 and h["in_flight_requests"] == 0


@pytest.mark.timeout(240)
def test_broker_paused_mid_request_is_503_and_nothing_partial(own_broker, tmp_path: Path) -> None:
    args = ["--publish-timeout", "2", "--rate-limit", "100/second"]
    with running_gateway(own_broker.bootstrap, tmp_path / "data", args) as gw:
        token = gw.device("r0201", "r0201.foot_left")
        blocks = blocks_for("r0201", n=8)
        first, paused = blocks[:3], blocks[3:]
        assert gw.post("/v1/sensor-blocks", body_of(first), token).status_code == 200

        os.killpg(own_broker.pid, signal.SIGSTOP)
        try:
            r = gw.post("/v1/sensor-blocks", body_of(paused), token)
            assert r.status_code == 503, r.text
            assert r.json()["error"] in ("kafka_timeout", "kafka_unavailable")
            assert int(r.headers["retry-after"]) >= 1
            health = httpx.get(gw.url + "/v1/health", timeout=30)
            assert health.status_code == 503 and health.json()["broker_reachable"] is False
        finally:
            os.killpg(own_broker.pid, signal.SIGCONT)
        broker.wait_until(lambda: _idle(gw.url), 60, 0.2, "the gateway to drain after the pause")

        seqs = Counter(
            b.seq for b in of_device(topic_events(gw.bootstrap, "sensor_blocks"), "r0201.foot_left")
        )
        landed = [seqs[b.seq] for b in paused]
        assert landed in ([0] * len(paused), [1] * len(paused)), landed  # the whole request or none of it
        assert all(seqs[b.seq] == 1 for b in first)

        retry = gw.post("/v1/sensor-blocks", body_of(paused), token)
        assert retry.status_code == 200 and retry.json()["accepted"] == len(paused)
        published = of_device(topic_events(gw.bootstrap, "sensor_blocks"), "r0201.foot_left")
        after = Counter(b.seq for b in published)
        assert set(after) == {
            b.seq for b in blocks
        }  # everything arrived; a resent copy is a visible duplicate
        assert [after[b.seq] for b in paused] == [n + 1 for n in landed]
        samples = gw.metrics()
        assert metric(samples, "gateway_refused_requests_total", reason=r.json()["error"]) == 1
        assert _letters_none(gw)

        # the broker gone altogether: 503 with Retry-After too, and nothing is taken
        os.killpg(own_broker.pid, signal.SIGKILL)
        gone = gw.post("/v1/sensor-blocks", body_of(blocks_for("r0201", n=2, seed=1)), token)
        assert gone.status_code == 503 and int(gone.headers["retry-after"]) >= 1
        assert httpx.get(gw.url + "/v1/health", timeout=30).json()["broker_reachable"] is False


def _letters_none(gw) -> bool:
    """A 503 is a refusal to take the request now, not a rejection of its content: no dead letter."""
    return topic_events(gw.bootstrap, "dead_letters") == []


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.mark.timeout(120)
def test_gateway_serves_https_with_a_certificate_and_key(kafka_bootstrap: str, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    args = ["--tls-cert", str(cert), "--tls-key", str(key)]
    with running_gateway(kafka_bootstrap, tmp_path / "data", args, scheme="https", verify=str(cert)) as gw:
        assert gw.url.startswith("https://")
        token = gw.device("r0202", "r0202.foot_left")
        blocks = blocks_for("r0202", n=2)
        r = httpx.post(
            gw.url + "/v1/sensor-blocks",
            content=body_of(blocks),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/vnd.gluteflow.frames"},
            verify=str(cert),
        )
        assert r.status_code == 200 and r.json()["accepted"] == 2
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the TLS port
            httpx.get(gw.url.replace("https://", "http://") + "/v1/health", timeout=5)


@pytest.mark.timeout(180)
def test_one_command_on_the_embedded_defaults_starts_and_stops_its_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``gluteflow gateway`` with no broker running and no KAFKA_BOOTSTRAP_SERVERS: it starts Tansu, applies
    the topics, serves, and stops that broker when it stops."""
    from gateway.credentials import DeviceStore
    from gateway.server import gateway_process

    monkeypatch.delenv(ENV_BOOTSTRAP, raising=False)
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k != ENV_BOOTSTRAP}
    env["GLUTEFLOW_DATA_DIR"] = str(data)
    token = DeviceStore(Paths(data).devices_db).register("r0203", "r0203.foot_left")[1]
    with gateway_process(env, data / "gateway.log", []) as gw:
        info = broker.read_state(Paths(data))
        assert info is not None and info.pid is not None
        r = httpx.post(
            gw.url + "/v1/sensor-blocks",
            content=body_of(blocks_for("r0203", n=2)),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/vnd.gluteflow.frames"},
        )
        assert r.status_code == 200 and r.json()["accepted"] == 2
    broker.wait_until(
        lambda: not Path(f"/proc/{info.pid}").exists() or _zombie(info.pid), 30, 0.1, "Tansu to stop"
    )
    assert broker.read_state(Paths(data)) is None


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
