"""Gateway parts without a server: framing, the credential store, the rate limit, the id rule."""

from __future__ import annotations

import sqlite3

import pytest

from gateway.credentials import CredentialError, DeviceStore, split_token
from gateway.ratelimit import DeviceRateLimit
from gateway.wire import FramingError, frame, unframe
from schemas.ids import event_id_problem, id_problem


def test_frames_round_trip_and_truncation_is_named() -> None:
    messages = [b"GF\x01\x02abc", b"", b"x" * 70_000]
    body = frame(messages)
    assert unframe(body) == messages
    assert unframe(b"") == []
    with pytest.raises(FramingError, match="frame 2 declares 70000 bytes"):
        unframe(body[:-1])
    with pytest.raises(FramingError, match="need a 4-byte length"):
        unframe(body + b"\x00\x01")


def test_store_keeps_only_a_salted_hash_and_checks_in_constant_time(tmp_path) -> None:
    store = DeviceStore(tmp_path / "devices.sqlite")
    cred, token = store.register("r0001", "r0001.foot_left")
    _, token2 = store.register("r0001", "r0001.foot_left")
    token_id, secret = split_token(token)
    raw = (tmp_path / "devices.sqlite").read_bytes()
    assert secret.encode() not in raw and token.encode() not in raw
    rows = (
        sqlite3.connect(tmp_path / "devices.sqlite")
        .execute("SELECT salt, hash, kdf FROM credentials")
        .fetchall()
    )
    assert len(rows) == 2 and rows[0][0] != rows[1][0] and rows[0][1] != rows[1][1]  # salted: distinct
    assert all(kdf.startswith("scrypt:") for _, _, kdf in rows)
    assert store.verify(token) == cred
    assert store.verify(token) == cred  # the cached path agrees
    assert store.verify(f"gf1.{token_id}.{secret[:-1]}A") is None
    assert store.verify(token2).token_id != cred.token_id
    assert store.revoke(token_id=token_id) == 1
    assert store.verify(token) is None  # revocation is read on every check, cache or not
    assert store.verify(token2) is not None
    assert store.revoke(device_id="r0001.foot_left") == 1
    assert [c.active for c in store.list()] == [False, False]
    with pytest.raises(CredentialError):
        store.register("r0001", "bad device")


def test_rate_limit_is_a_bucket_per_device_with_the_wait_until_the_next_token() -> None:
    limit = DeviceRateLimit("4/second")
    assert [limit.hit("a", now=10.0) for _ in range(4)] == [0.0] * 4
    assert limit.hit("a", now=10.0) == pytest.approx(0.25)
    assert limit.hit("b", now=10.0) == 0.0  # another device has its own bucket
    assert limit.hit("a", now=10.25) == 0.0  # one token back after 1/4 s
    assert limit.hit("a", now=10.25) == pytest.approx(0.25)
    slow = DeviceRateLimit("6/minute")
    assert slow.hit("a", now=0.0) == 0.0
    for _ in range(5):
        slow.hit("a", now=0.0)
    assert slow.hit("a", now=0.0) == pytest.approx(10.0)


def test_id_rule_accepts_the_projects_ids_and_names_what_is_wrong() -> None:
    for ok in ("r0001", "r0001.foot_left", "r0001-20261005-1", "fit-0123456789abcdef-0", "-", "garmin-1-3:x"):
        assert id_problem("x", ok) is None, ok
    for bad in ("", "a b", "x" * 65, "<b>", "é", "a\nb", None, 5):
        assert id_problem("device_id", bad) is not None, bad
    assert "\\x{3c}" in id_problem("device_id", "<b>")

    class E:
        runner_id, device_id, session_id = "r1", "d1", "s\t1"

    assert event_id_problem(E()).startswith("session_id")


def test_run_plans_the_simulation_through_the_gateway_only_when_asked() -> None:
    import datetime as dt

    from jobs.run_chain import plan_steps

    day = dt.date(2026, 10, 5)
    via = plan_steps(2, 1, day, 0, [], 0.1, 1, via="http://127.0.0.1:8470")
    direct = plan_steps(2, 1, day, 0, [], 0.1, 1)
    sim_via = next(s for s in via if s.name == "simulate").args
    sim_direct = next(s for s in direct if s.name == "simulate").args
    assert sim_via == [*sim_direct, "--via", "http://127.0.0.1:8470"]
    assert [s.name for s in via] == [s.name for s in direct]
