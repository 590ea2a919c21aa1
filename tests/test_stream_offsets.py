"""Checkpointed offsets that no longer point into the log (issue 13, item 1): a restarted in-memory
broker or a topic recreated under its name. The job stops with one clear error and reads nothing;
``--reset-offsets earliest|latest`` is the documented way on, and then nothing is skipped silently."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient
from test_bad_input_suite import assert_rows_equal  # tests/ is on sys.path (rootdir conftest)
from test_stream_job import fleet, produce
from typer.testing import CliRunner

from infra import topics
from infra.kafka_io import invalid_offsets
from infra.settings import Paths
from jobs.cli import app
from jobs.stream_driver import INPUT_TOPIC_KEYS, StreamOptions, checkpoint_path, run
from pipelines.lake import read_table
from schemas.tables import STRIDES


def recreate_topics(bootstrap: str) -> None:
    """Delete the input topics and create them again, empty (what a restart of Tansu amounts to)."""
    names = [topics.topic(k) for k in INPUT_TOPIC_KEYS]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics(names)
        deadline = time.monotonic() + 30
        while set(names) & set(admin.list_topics()):
            assert time.monotonic() < deadline, "topics not deleted"
            time.sleep(0.05)
    finally:
        admin.close()
    created = topics.apply(bootstrap)
    assert all(created[n] == "created" for n in names), created


def strides_of(paths: Paths, runner: str) -> list[dict]:
    rows = [r for r in read_table(paths.table("strides"), STRIDES).to_pylist() if r["runner_id"] == runner]
    return sorted(rows, key=lambda r: r["stride_id"])


def stream(paths: Paths, *extra: str):
    return CliRunner().invoke(app, ["--data-dir", str(paths.root), "stream", "--until-idle", "0", *extra])


@pytest.mark.timeout(400)
def test_recreated_topics_stop_the_job_until_offsets_are_reset(kafka: str, tmp_path) -> None:
    (_, first), (_, second) = fleet(n_runners=2, duration_s=30)
    old = Paths(tmp_path / "old").ensure()
    produce(kafka, first)
    assert stream(old).exit_code == 0
    before = strides_of(old, "r000")
    assert len(before) > 60

    recreate_topics(kafka)  # the broker lost everything; r001's run arrives afterwards
    produce(kafka, second)
    ckpt = checkpoint_path(old).read_bytes()
    res = stream(old)
    assert res.exit_code == 1, res.output
    err = " ".join(res.output.split())
    assert "does not match the broker" in err and "--reset-offsets earliest" in err, err
    assert "topic recreated" in err and "Nothing was read" in err and "Traceback" not in res.output
    assert checkpoint_path(old).read_bytes() == ckpt  # nothing committed, nothing skipped
    assert strides_of(old, "r001") == []

    res = stream(old, "--reset-offsets", "earliest")
    assert res.exit_code == 0, res.output
    assert "offsets reset to earliest" in res.output
    fresh = Paths(tmp_path / "fresh").ensure()
    run(StreamOptions(kafka, fresh), until_idle_s=0.0)
    want = strides_of(fresh, "r001")
    assert len(want) > 60
    assert_rows_equal(strides_of(old, "r001"), want, "strides")  # as much as a fresh data dir makes
    assert_rows_equal(strides_of(old, "r000"), before, "strides")
    assert stream(old).exit_code == 0  # the reset is committed: the next run goes on normally


@pytest.mark.timeout(400)
def test_same_input_produced_again_is_detected_and_read_once(kafka: str, paths: Paths) -> None:
    """After a restart the same input is produced again: every offset is where it was (only the topic
    ids tell), so without the id check the job would skip all of it. Reset to earliest re-reads it and
    the lake does not duplicate a stride (the session state recognises (device, seq))."""
    ((_, events),) = fleet(n_runners=1, duration_s=30)
    produce(kafka, events)
    assert stream(paths).exit_code == 0
    before = strides_of(paths, "r000")
    recreate_topics(kafka)
    produce(kafka, events)
    res = stream(paths)
    assert res.exit_code == 1 and "topic recreated" in " ".join(res.output.split()), res.output
    res = stream(paths, "--reset-offsets", "earliest")
    assert res.exit_code == 0 and "offsets reset to earliest" in res.output, res.output
    assert_rows_equal(strides_of(paths, "r000"), before, "strides")  # read again, not duplicated
    # once more, skipping instead: nothing is read
    recreate_topics(kafka)
    produce(kafka, events)
    res = stream(paths, "--reset-offsets", "latest")
    assert res.exit_code == 0 and "offsets reset to latest" in res.output, res.output
    assert "0 batches, 0 messages" in res.output
    assert_rows_equal(strides_of(paths, "r000"), before, "strides")


def test_invalid_offsets_name_each_case() -> None:
    begins = {("t", 0): 0, ("t", 1): 50, ("t", 2): 0, ("u", 0): 0}
    ends = {("t", 0): 10, ("t", 1): 80, ("t", 2): 5, ("u", 0): 7}
    committed = {"t": {"0": 12, "1": 20, "2": 5}, "u": {"0": 3}}
    bad = invalid_offsets(committed, {"t": "a", "u": "b"}, begins, ends, {"t": "a", "u": "c"})
    assert set(bad) == {("t", 0), ("t", 1), ("u", 0)}
    assert "ends at 10" in bad[("t", 0)] and "30 messages" in bad[("t", 1)] and "recreated" in bad[("u", 0)]
    assert invalid_offsets({}, {}, begins, ends, {"t": "z"}) == {}  # nothing read yet: nothing to check
