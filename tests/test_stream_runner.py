"""The stream job unbounded on Beam's Prism runner (built by ``make prism``) against the real embedded
broker: started, stopped once its tables are complete, and compared with the local micro-batch
execution of the same composite on the same input, every column."""

from __future__ import annotations

import pytest
from table_equality import assert_tables_equal
from test_stream_job import fleet, produce

from infra import topics
from infra.kafka_io import make_producer
from infra.settings import Paths
from jobs.stream_driver import StreamOptions, run
from pipelines.lake import read_table
from schemas.tables import DEAD_LETTERS, STRIDES


def _tables(paths: Paths):
    return read_table(paths.table("strides"), STRIDES), read_table(paths.table("dead_letters"), DEAD_LETTERS)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("reader", ["python", "java"])
def test_unbounded_on_prism_equals_the_local_execution(kafka: str, tmp_path, reader: str) -> None:
    """``python``: the project's Kafka SDF; ``java``: Beam's ReadFromKafka (KafkaIO through the
    project's expansion service, ``make kafka-expansion``)."""
    from infra.runners import RunnerUnavailable, kafka_expansion_jar, prism_binary

    try:
        prism_binary()
        if reader == "java":
            kafka_expansion_jar()
    except RunnerUnavailable as exc:
        pytest.skip(f"not installed here: {exc}")
    from jobs.stream_runner import StreamingJob, run_streaming

    produce(kafka, [e for _, ev in fleet(3, 40) for e in ev])
    producer = make_producer(kafka)
    producer.send(topics.topic("sensor_blocks"), key=b"r000", value=b"not a gluteflow message")
    producer.flush()
    producer.close()
    local = Paths(tmp_path / "local").ensure()
    run(StreamOptions(kafka, local, workers=1), until_idle_s=0.0)
    want_strides, want_dead = _tables(local)
    assert want_strides.num_rows > 200 and want_dead.num_rows == 1

    streamed = Paths(tmp_path / "prism").ensure()

    def complete() -> bool:
        strides, dead = _tables(streamed)
        return strides.num_rows >= want_strides.num_rows and dead.num_rows >= want_dead.num_rows

    result = run_streaming(
        StreamingJob(kafka, streamed), ["--runner=PrismRunner"], run_for_s=180, until=complete
    )
    assert str(result.state).endswith("CANCELLED")  # stopped by us, not finished or failed
    strides, dead = _tables(streamed)
    assert_tables_equal(strides, want_strides, "stride_id")
    assert_tables_equal(dead, want_dead, "dead_letter_id")
