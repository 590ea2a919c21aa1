"""The device ingest gateway against the real broker: happy path, and every abuse case with its status code,
its dead letter where an event was received, and counts that reconcile (metrics against the topics)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from gateway_support import (
    Gw,
    blocks_for,
    body_of,
    metric,
    of_device,
    running_gateway,
    topic_events,
)

from gateway.credentials import CredentialError
from gateway.wire import frame
from schemas.codec import encode
from schemas.events import DeadLetter, SessionMarker, WatchRecord

REPO = Path(__file__).resolve().parents[1]
MAX_BODY = 200_000
RATE = "5/second"


@pytest.fixture(scope="module")
def gw(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("gateway") / "data"
    args = ["--max-body-bytes", str(MAX_BODY), "--rate-limit", RATE]
    with running_gateway(kafka_bootstrap, data, args) as g:
        yield g


def _letters(gw: Gw, device_id: str) -> list[DeadLetter]:
    return of_device(topic_events(gw.bootstrap, "dead_letters"), device_id)


def test_blocks_accepted_and_published_as_sent(gw: Gw) -> None:
    token = gw.device("r0101", "r0101.foot_left")
    blocks = blocks_for("r0101")
    before = gw.metrics()
    r = gw.post("/v1/sensor-blocks", body_of(blocks), token)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 4, "dead_lettered": 0, "dead_letters": []}
    published = of_device(topic_events(gw.bootstrap, "sensor_blocks"), "r0101.foot_left")
    assert published == blocks  # every field and sample, in order
    after = gw.metrics()
    topic = f"{gw.env['GLUTEFLOW_TOPIC_PREFIX']}gluteflow.sensor-blocks.v1"
    assert (
        metric(after, "gateway_events_accepted_total", topic=topic)
        - metric(before, "gateway_events_accepted_total", topic=topic)
        == 4
    )
    assert metric(after, "gateway_requests_total", endpoint="/v1/sensor-blocks", status="200") > metric(
        before, "gateway_requests_total", endpoint="/v1/sensor-blocks", status="200"
    )


def test_missing_forged_and_malformed_tokens_are_401_and_publish_nothing(gw: Gw) -> None:
    token = gw.device("r0102", "r0102.foot_left")
    body = body_of(blocks_for("r0102"))
    token_id = token.split(".")[1]
    forged = f"gf1.{token_id}.{'A' * 43}"  # the right token id with a wrong secret
    before = metric(gw.metrics(), "gateway_refused_requests_total", reason="unauthorized")
    for bad in (None, forged, "gf1.0000000000000000.secret", "not-a-token", token + "x"):
        r = gw.post("/v1/sensor-blocks", body, bad)
        assert r.status_code == 401, (bad, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"] == "unauthorized"
    assert metric(gw.metrics(), "gateway_refused_requests_total", reason="unauthorized") - before == 5
    # guessing secrets under a known token id: each guess costs a KDF run, so only a few are checked
    codes = [gw.post("/v1/sensor-blocks", body, forged).status_code for _ in range(12)]
    # 10 a minute: two were spent above (the forged secret, the token with a character added)
    assert codes == [401] * 8 + [429] * 4, codes
    assert of_device(topic_events(gw.bootstrap, "sensor_blocks"), "r0102.foot_left") == []
    assert _letters(gw, "r0102.foot_left") == []  # unauthenticated bodies are not read


def test_revoked_token_is_401_from_the_next_request(gw: Gw) -> None:
    token = gw.device("r0103", "r0103.foot_left")
    blocks = blocks_for("r0103")
    assert gw.post("/v1/sensor-blocks", body_of(blocks[:2]), token).status_code == 200
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "devices", "revoke", "--device", "r0103.foot_left"],
        env=gw.env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "revoked 1 token" in done.stdout
    r = gw.post("/v1/sensor-blocks", body_of(blocks[2:]), token)
    assert r.status_code == 401
    assert of_device(topic_events(gw.bootstrap, "sensor_blocks"), "r0103.foot_left") == blocks[:2]
    listed = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "devices", "list"],
        env=gw.env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert token.split(".")[1] in listed.stdout and token.split(".")[2] not in listed.stdout


@pytest.mark.parametrize("other", ["device", "runner"])
def test_another_devices_or_runners_id_is_403_with_one_dead_letter(gw: Gw, other: str) -> None:
    runner = "r0104" if other == "device" else "r0105"
    token = gw.device(runner, f"{runner}.foot_left")
    if other == "device":  # same runner, its other foot
        blocks = blocks_for(runner)[:2] + blocks_for(runner, "foot_right")[:1]
    else:  # another runner's foot pod
        blocks = blocks_for(runner)[:2] + blocks_for("r0999")[:1]
    body = body_of(blocks)
    r = gw.post("/v1/sensor-blocks", body, token)
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden" and r.json()["dead_lettered"] == 1
    assert "frame 2" in r.json()["detail"]
    published = topic_events(gw.bootstrap, "sensor_blocks")
    assert (
        of_device(published, f"{runner}.foot_left") == []
    )  # nothing of the request, not even its own blocks
    assert of_device(published, blocks[2].device_id) == []
    letters = _letters(gw, f"{runner}.foot_left")
    assert [(d.reason, d.runner_id, d.original) for d in letters] == [("forbidden", runner, body)]
    assert _letters(gw, blocks[2].device_id) == []  # attributed to the credential, not to the claimed id


def test_oversized_bodies_are_413_declared_or_streamed(gw: Gw) -> None:
    token = gw.device("r0106", "r0106.foot_left")
    big = body_of(blocks_for("r0106", n=60))
    assert len(big) > MAX_BODY
    r = gw.post("/v1/sensor-blocks", big, token)
    assert r.status_code == 413 and r.json()["error"] == "too_large"

    def chunks():  # no Content-Length: the gateway stops reading at the limit
        for i in range(0, len(big), 16_384):
            yield big[i : i + 16_384]

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/vnd.gluteflow.frames"}
    r = httpx.post(gw.url + "/v1/sensor-blocks", content=chunks(), headers=headers, timeout=30)
    assert r.status_code == 413
    assert of_device(topic_events(gw.bootstrap, "sensor_blocks"), "r0106.foot_left") == []
    assert _letters(gw, "r0106.foot_left") == []  # never read whole: no event was received


def test_truncated_body_is_400_and_one_dead_letter_nothing_else(gw: Gw) -> None:
    token = gw.device("r0107", "r0107.foot_left")
    body = body_of(blocks_for("r0107", n=3))[:-100]
    r = gw.post("/v1/sensor-blocks", body, token)
    assert r.status_code == 400
    assert r.json()["error"] == "bad_request" and "truncated" in r.json()["detail"]
    assert of_device(topic_events(gw.bootstrap, "sensor_blocks"), "r0107.foot_left") == []
    assert [(d.reason, d.original) for d in _letters(gw, "r0107.foot_left")] == [("bad_request", body)]


def test_wrong_content_type_is_415(gw: Gw) -> None:
    token = gw.device("r0108", "r0108.foot_left")
    body = body_of(blocks_for("r0108", n=1))
    for ctype in ("application/json", "text/html", ""):
        r = gw.post("/v1/sensor-blocks", body, token, ctype=ctype)
        assert r.status_code == 415, ctype
        assert r.json()["error"] == "unsupported_media_type"
    assert of_device(topic_events(gw.bootstrap, "sensor_blocks"), "r0108.foot_left") == []


def test_malformed_encodings_are_dead_lettered_each_with_its_reason(gw: Gw) -> None:
    token = gw.device("r0109", "r0109.foot_left")
    good, spoiled = blocks_for("r0109", n=2)
    spoiled.channels = {k: v.copy() for k, v in spoiled.channels.items()}
    spoiled.channels["gyr_y"][5] = np.nan
    valid = encode(good)
    frames = [
        valid,
        b"<html>not a message</html>",  # no GF magic
        valid[:40],  # header fine, body cut short
        valid[:3] + bytes([99]) + valid[4:],  # schema version 99
        encode(spoiled),  # decodes, fails validation
    ]
    r = gw.post("/v1/sensor-blocks", frame(frames), token)
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["accepted"] == 1 and res["dead_lettered"] == 4
    reasons = [(d["index"], d["reason"]) for d in res["dead_letters"]]
    assert reasons == [(1, "bad_header"), (2, "decode_error"), (3, "unknown_schema"), (4, "non_finite")]
    assert of_device(topic_events(gw.bootstrap, "sensor_blocks"), "r0109.foot_left") == [good]
    letters = _letters(gw, "r0109.foot_left")
    assert sorted((d.reason, d.original) for d in letters) == sorted(
        [
            ("bad_header", frames[1]),
            ("decode_error", frames[2]),
            ("unknown_schema", frames[3]),
            ("non_finite", frames[4]),
        ]
    )


@pytest.mark.parametrize(
    "bad_id", ["<script>alert(1)</script>", "s1\x00\x1b[2J", "a b", "x" * 65, "", "r0110/../../etc"]
)
def test_html_and_control_characters_in_ids_are_400_with_one_dead_letter(gw: Gw, bad_id: str) -> None:
    device = f"r0110.d{abs(hash(bad_id)) % 10_000}"
    token = gw.device("r0110", device)
    block = blocks_for("r0110", n=1)[0]
    block.device_id, block.session_id = device, bad_id
    body = body_of([block])
    r = gw.post("/v1/sensor-blocks", body, token)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_id" and "session_id" in r.json()["detail"]
    assert "<script>" not in r.text and "\x00" not in r.text  # the id is echoed escaped
    assert of_device(topic_events(gw.bootstrap, "sensor_blocks"), device) == []
    assert [(d.reason, d.original) for d in _letters(gw, device)] == [("bad_id", body)]
    with pytest.raises(CredentialError):
        gw.store.register("r0110", bad_id)  # and no credential can carry such an id


def test_records_endpoint_takes_watch_records_markers_not_forged_dead_letters(gw: Gw) -> None:
    token = gw.device("r0111", "r0111.watch")
    t0 = blocks_for("r0111", n=1)[0].start_time_us
    common = dict(runner_id="r0111", device_id="r0111.watch", session_id="r0111-s0")
    events = [
        SessionMarker(**common, seq=0, timestamp_us=t0, marker="start", source="device"),
        WatchRecord(**common, seq=1, timestamp_us=t0 + 1_000_000, heart_rate_bpm=150, speed_m_s=3.2),
        WatchRecord(**common, seq=2, timestamp_us=t0 + 2_000_000, heart_rate_bpm=400),  # out of range
    ]
    forged = DeadLetter(reason="x", detail="y", stage="z", original=b"", dead_lettered_at_us=t0, **common)
    r = gw.post("/v1/records", frame([*(encode(e) for e in events), encode(forged)]), token)
    assert r.status_code == 200, r.text
    assert [(d["index"], d["reason"]) for d in r.json()["dead_letters"]] == [
        (2, "out_of_range"),
        (3, "unknown_schema"),
    ]
    assert of_device(topic_events(gw.bootstrap, "sessions"), "r0111.watch") == events[:1]
    assert of_device(topic_events(gw.bootstrap, "watch_records"), "r0111.watch") == events[1:2]
    assert sorted(d.reason for d in _letters(gw, "r0111.watch")) == ["out_of_range", "unknown_schema"]
    # a sensor block is not a record: the endpoints keep their kinds apart
    r = gw.post("/v1/sensor-blocks", frame([encode(events[1])]), token)
    assert r.json()["dead_letters"][0]["reason"] == "unknown_schema"


def test_a_flooding_device_is_rate_limited_while_others_are_served(gw: Gw) -> None:
    flood_token = gw.device("r0112", "r0112.foot_left")
    calm_token = gw.device("r0113", "r0113.foot_left")
    flood_blocks = blocks_for("r0112", n=40)
    calm_blocks = blocks_for("r0113", n=4)
    headers = {"Content-Type": "application/vnd.gluteflow.frames"}

    async def main():
        async with httpx.AsyncClient(base_url=gw.url, timeout=60) as client:
            flood = [
                client.post(
                    "/v1/sensor-blocks",
                    content=body_of([b]),
                    headers={**headers, "Authorization": f"Bearer {flood_token}"},
                )
                for b in flood_blocks
            ]
            calm = [
                client.post(
                    "/v1/sensor-blocks",
                    content=body_of([b]),
                    headers={**headers, "Authorization": f"Bearer {calm_token}"},
                )
                for b in calm_blocks
            ]
            return await asyncio.gather(asyncio.gather(*flood), asyncio.gather(*calm))

    flood_r, calm_r = asyncio.run(main())
    assert [r.status_code for r in calm_r] == [200] * 4
    codes = [r.status_code for r in flood_r]
    assert set(codes) == {200, 429} and codes.count(429) >= 30, codes
    assert all(int(r.headers["retry-after"]) >= 1 for r in flood_r if r.status_code == 429)
    published = of_device(topic_events(gw.bootstrap, "sensor_blocks"), "r0112.foot_left")
    assert sorted(b.seq for b in published) == sorted(
        b.seq for b, r in zip(flood_blocks, flood_r, strict=True) if r.status_code == 200
    )
    assert _letters(gw, "r0112.foot_left") == []  # a 429 body is not read


def test_health_and_metrics_reconcile_with_the_topics(gw: Gw) -> None:
    r = httpx.get(gw.url + "/v1/health", timeout=10)
    assert r.status_code == 200 and r.json()["broker_reachable"] is True
    samples = gw.metrics()
    accepted = sum(v for k, v in samples.items() if k.startswith("gateway_events_accepted_total{"))
    dead = sum(v for k, v in samples.items() if k.startswith("gateway_events_dead_lettered_total{"))
    in_topics = sum(
        len(topic_events(gw.bootstrap, k))
        for k in ("sensor_blocks", "watch_records", "sessions", "runner_profiles")
    )
    assert accepted == in_topics > 0
    assert dead == len(topic_events(gw.bootstrap, "dead_letters")) > 0
    assert metric(samples, "gateway_kafka_send_errors_total") == 0
    assert metric(samples, "gateway_request_body_bytes_total", endpoint="/v1/sensor-blocks") > 0
    assert metric(samples, "gateway_request_duration_seconds_count", endpoint="/v1/sensor-blocks") > 0


def test_fit_upload_goes_through_the_importer_all_or_nothing(gw: Gw) -> None:
    from conftest import fixtures_dir

    fit = fixtures_dir("fit")
    token = gw.device("r0114", "r0114.watch")
    good = fit / "activity-small-fenix2-run.fit"
    r = gw.post("/v1/fit", good.read_bytes(), token, ctype="application/vnd.ant.fit")
    assert r.status_code == 200, r.text
    accepted = r.json()["accepted"]
    assert accepted > 100
    published = of_device(topic_events(gw.bootstrap, "watch_records"), "r0114.watch")
    published += of_device(topic_events(gw.bootstrap, "sessions"), "r0114.watch")
    assert len(published) == accepted
    assert all(e.runner_id == "r0114" for e in published)
    corrupt = (fit / "activity-unexpected-eof.fit").read_bytes()  # the importer refuses the whole file
    token2 = gw.device("r0114", "r0114.watch2")
    r = gw.post("/v1/fit", corrupt, token2, ctype="application/vnd.ant.fit")
    assert r.status_code == 422, r.text
    assert r.json()["accepted"] == 0 and [d["reason"] for d in r.json()["dead_letters"]] == ["corrupt_file"]
    assert of_device(topic_events(gw.bootstrap, "watch_records"), "r0114.watch2") == []


def test_the_documented_example_body_is_accepted(gw: Gw) -> None:
    from gateway.example import example_body

    token = gw.device("r0115", "r0115.pod")
    r = gw.post("/v1/sensor-blocks", example_body("r0115", "r0115.pod"), token)
    assert r.status_code == 200 and r.json() == {"accepted": 3, "dead_lettered": 0, "dead_letters": []}
