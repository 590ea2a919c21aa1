"""The stream job's own dead letters, read back from the dead-letter topic (issue 13).

The job writes its dead letters to the lake and then to the topic; reading them back it must not
archive them twice. Skipping every letter that merely *says* ``stage: stream`` let a forged one
vanish while the counts still reconciled, so a letter is skipped only when the lake already holds a
row with its id and reason; any other is archived as an ``unverified_dead_letter`` (forged, or
written by a stream job on another data directory).
"""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pyarrow.dataset as ds

from schemas.validate import Rejection

NS = "stream"


def lake_letter_keys(table_dir: str, ids: list[str]) -> set[tuple[str, str]]:
    """``(dead_letter_id, reason)`` of the rows among ``ids`` that the lake's dead_letters table holds."""
    if not ids or not table_dir or not any(Path(table_dir).glob("*/*.parquet")):
        return set()
    data = ds.dataset(table_dir, format="parquet", partitioning="hive", exclude_invalid_files=True)
    t = data.to_table(columns=["dead_letter_id", "reason"], filter=ds.field("dead_letter_id").isin(ids))
    return set(zip(t["dead_letter_id"].to_pylist(), t["reason"].to_pylist(), strict=True))


def verify_own_letters(letters: list[tuple], dead_letters_dir: str | None) -> list[dict]:
    """``letters``: ``(dead_letter_id, reason, (topic, partition, offset, kafka ts us), raw)`` per own
    letter read -> DEAD_LETTERS rows for the unverified ones (empty: all genuine)."""
    from pipelines.stream.transforms import _dead_row

    known = lake_letter_keys(dead_letters_dir or "", sorted({dl_id for dl_id, *_ in letters}))
    rows = []
    for dl_id, reason, (topic, part, off, ts_us), raw in letters:
        if (dl_id, reason) in known:
            beam.metrics.Metrics.counter(NS, "own_dead_letters_skipped").inc()
            continue
        detail = f"says stage 'stream' ({reason}, {dl_id}) but the lake holds no such dead letter"
        rows.append(
            _dead_row(Rejection("unverified_dead_letter", detail), raw, None, topic, part, off, ts_us)
        )
    return rows


class _VerifyFn(beam.DoFn):
    """Checks a bundle's own letters against the lake in one read (bounded or unbounded input)."""

    def __init__(self, dead_letters_dir: str | None):
        self.dead_letters_dir = dead_letters_dir

    def start_bundle(self):
        self._letters: list[tuple] = []

    def process(self, letter):
        self._letters.append(letter)

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.timestamp import MIN_TIMESTAMP
        from apache_beam.utils.windowed_value import WindowedValue

        rows = verify_own_letters(self._letters, self.dead_letters_dir) if self._letters else []
        self._letters = []
        if rows:
            yield WindowedValue(rows, MIN_TIMESTAMP, [GlobalWindow()])


class VerifyOwnDeadLetters(beam.PTransform):
    """Own dead letters read back -> lists of dead-letter rows for those the lake does not hold."""

    def __init__(self, dead_letters_dir: str | None):
        super().__init__()
        self.dead_letters_dir = dead_letters_dir

    def expand(self, letters):
        return letters | "CheckAgainstLake" >> beam.ParDo(_VerifyFn(self.dead_letters_dir))
