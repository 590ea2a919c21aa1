"""Read-only looks at the topics: message counts, dead letters by reason, and bounded full reads.

Everything here reads from the earliest offset to the high watermark taken at call time, so it
terminates even while producers keep writing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from infra import topics
from infra.kafka_io import end_offsets, make_consumer, read_partition, topic_counts


def topic_message_counts(bootstrap: str) -> dict[str, int]:
    """Messages currently held by every declared topic (with the active topic prefix), by topic name."""
    names = [topics.topic(key) for key in topics.declared()]
    return topic_counts(bootstrap, names)


def read_topic(bootstrap: str, topic: str) -> Iterator[tuple[int, int, bytes | None, bytes]]:
    """Yield (partition, offset, key, value) of every message now in ``topic``, partition by partition."""
    consumer = make_consumer(bootstrap, client_id="gluteflow-inspect")
    try:
        from kafka import TopicPartition

        ends = end_offsets(bootstrap, topic)
        begins = consumer.beginning_offsets([TopicPartition(topic, p) for p in ends])
        for partition, end in sorted(ends.items()):
            start = begins[TopicPartition(topic, partition)]
            if end <= start:
                continue
            for offset, key, value in read_partition(consumer, topic, partition, start, end):
                yield partition, offset, key, value
    finally:
        consumer.close()


def read_events(bootstrap: str, key: str) -> list:
    """Decode every message of the topic with logical ``key`` (e.g. ``watch_records``)."""
    from schemas.codec import decode

    return [decode(value) for _, _, _, value in read_topic(bootstrap, topics.topic(key))]


def dead_letter_reasons(bootstrap: str) -> Counter:
    """Dead letters now in the dead-letter topic, tallied by ``reason`` (``undecodable`` if unreadable)."""
    from schemas.codec import DecodeError, decode_record

    tally: Counter = Counter()
    for _, _, _, value in read_topic(bootstrap, topics.topic("dead_letters")):
        try:
            kind, _, rec = decode_record(value)
        except DecodeError:
            tally["undecodable"] += 1
            continue
        tally[rec.get("reason", "undecodable") if kind == "dead_letter" else f"not_a_dead_letter:{kind}"] += 1
    return tally
