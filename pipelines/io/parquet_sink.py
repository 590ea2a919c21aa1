"""Beam sinks writing one batch's rows as deterministic, atomic Parquet / Arrow IPC files.

Each sink gathers its PCollection into one list (a batch is bounded and its size capped by the driver)
and writes through :mod:`pipelines.lake` (tmp file + fsync + rename, zstd, statistics, sorted), with a
file name fixed by the batch number: a rerun of the same batch replaces, never duplicates.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import apache_beam as beam
import pyarrow as pa

from pipelines.lake import write_file_atomic, write_partitioned


class _WriteRowsFn(beam.DoFn):
    def __init__(self, out_dir: str, schema: pa.Schema, file_name: str, partition_cols, sort_by):
        self.out_dir = out_dir
        self.schema = schema
        self.file_name = file_name
        self.partition_cols = list(partition_cols)
        self.sort_by = list(sort_by)

    def process(self, rows: list[dict] | pa.Table):
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=self.schema)
        if not table.num_rows:
            return
        if self.partition_cols:
            paths = write_partitioned(
                table, Path(self.out_dir), self.partition_cols, self.file_name, self.sort_by
            )
        else:
            paths = [write_file_atomic(table, Path(self.out_dir) / self.file_name, self.sort_by)]
        for path in paths:
            yield str(path)


class WriteParquetTable(beam.PTransform):
    """rows (dicts of ``schema``) -> ``<out_dir>/<col>=<v>/<file_name>``; yields written paths."""

    def __init__(
        self,
        out_dir: str | os.PathLike,
        schema: pa.Schema,
        file_name: str,
        partition_cols: Sequence[str] = ("date",),
        sort_by: Sequence[str] = (),
    ):
        super().__init__()
        self.args = (str(out_dir), schema, file_name, tuple(partition_cols), tuple(sort_by))

    def expand(self, rows):
        return (
            rows
            | "GatherBatch" >> beam.combiners.ToList()
            | "WriteAtomic" >> beam.ParDo(_WriteRowsFn(*self.args))
        )


def write_ipc_atomic(table: pa.Table, path: Path) -> Path:
    """Write an Arrow IPC file atomically (tmp + fsync + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


STATE_SCHEMA = pa.schema(
    [
        pa.field("runner_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),  # home Kafka partition index (-1: none)
        pa.field("state", pa.large_binary(), nullable=False),
    ]
)


def read_state_file(path: Path) -> list[tuple[str, str, int | None, bytes]]:
    """Carry-over rows ``(runner, session, home partition, blob)``; the partition is ``None`` in files
    written before it was a column (the caller then reads it from the blob)."""
    if not path.exists():
        return []
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    n = table.num_rows
    parts = table["partition"].to_pylist() if "partition" in table.column_names else [None] * n
    return list(
        zip(
            table["runner_id"].to_pylist(),
            table["session_id"].to_pylist(),
            parts,
            table["state"].to_pylist(),
            strict=True,
        )
    )


def read_state_keys(path: Path) -> list[tuple[str, str]]:
    """``(runner, session)`` of a carry-over file, without reading the state blobs (memory-mapped)."""
    if not path.exists():
        return []
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
        return list(zip(table["runner_id"].to_pylist(), table["session_id"].to_pylist(), strict=True))


class _WriteStateFn(beam.DoFn):
    def __init__(self, path: str):
        self.path = path

    def process(self, rows: list[tuple[str, str, int, bytes]]):
        rows = sorted(rows)
        columns = zip(*rows, strict=True) if rows else ([], [], [], [])
        table = pa.table(dict(zip(STATE_SCHEMA.names, map(list, columns), strict=True)), schema=STATE_SCHEMA)
        yield str(write_ipc_atomic(table, Path(self.path)))


class _WriteTablesFn(beam.DoFn):
    """``(table, [row lists])`` -> that table's file(s); yields written paths."""

    def __init__(self, tables: dict):
        self.tables = tables

    def process(self, element):
        name, chunks = element
        kind, args = self.tables[name]
        if kind == "parquet":  # chunks are row lists or Arrow tables of the table's schema
            schema = args[1]
            parts = [c if isinstance(c, pa.Table) else pa.Table.from_pylist(c, schema=schema) for c in chunks]
            yield from _WriteRowsFn(*args).process(pa.concat_tables(parts) if parts else schema.empty_table())
            return
        rows = [r for chunk in chunks for r in chunk]
        if kind == "state":
            yield from _WriteStateFn(*args).process(rows)
        elif kind == "json":
            import json

            path = Path(args[0])
            path.write_text(json.dumps(sorted(rows)))
            yield str(path)


class WriteTables(beam.PTransform):
    """Several tables in one step: ``{name: PCollection of row lists or Arrow tables}`` -> files.

    ``tables[name]`` is ``("parquet", (out_dir, schema, file_name, partition_cols, sort_by))``,
    ``("state", (path,))`` (Arrow IPC session snapshots) or ``("json", (path,))`` (sorted rows as JSON).
    One Flatten + GroupByKey keyed by table name replaces a combiner per table (Beam's construction
    and per-stage cost dominate small batches). A table without rows writes no file.
    """

    def __init__(self, tables: dict):
        super().__init__()
        self.tables = {
            name: (kind, tuple(str(a) if isinstance(a, os.PathLike) else a for a in args))
            for name, (kind, args) in tables.items()
        }

    def expand(self, pcolls: dict):
        return (
            pcolls
            | "AllTables" >> _TaggedByTable()
            | "ByTable" >> beam.GroupByKey()
            | "WriteTables" >> beam.ParDo(_WriteTablesFn(self.tables))
        )


class _TaggedByTable(beam.PTransform):
    """``{name: PCollection}`` -> one PCollection of ``(name, element)``."""

    def expand(self, pcolls: dict):
        tagged = [
            pcoll | f"Tag_{name}" >> beam.Map(lambda rows, n=name: (n, rows))
            for name, pcoll in sorted(pcolls.items())
        ]
        return tagged | "Flatten" >> beam.Flatten()


class _WritePaneFn(beam.DoFn):
    """``(table, [chunks])`` of one window pane -> that table's files, named by the window and pane."""

    def __init__(self, tables: dict):
        self.tables = tables

    def process(self, element, window=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        name, chunks = element
        out_dir, schema, partition_cols, sort_by = self.tables[name]
        file_name = f"part-w{window.start.micros:020d}-p{pane.index:04d}.parquet"
        parts = [c if isinstance(c, pa.Table) else pa.Table.from_pylist(c, schema=schema) for c in chunks]
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        yield from _WriteRowsFn(out_dir, schema, file_name, partition_cols, sort_by).process(table)


class WriteWindowedTables(beam.PTransform):
    """Streaming sink: ``{name: PCollection of row lists or Arrow tables}`` -> one file per table, fixed
    window of element time (Kafka record time) and pane: ``part-w<window start us>-p<pane>.parquet``.

    A window's first pane fires when the watermark passes its end; records that reach it later (up to
    ``allowed_lateness_s``) fire further panes, each its own file. Names depend only on the window and
    the pane index, and every file is written atomically (tmp + rename), so a retried bundle rewrites
    the same file instead of adding one. ``tables[name]`` is ``(out_dir, schema, partition_cols,
    sort_by)``.
    """

    def __init__(self, tables: dict, window_s: float = 10.0, allowed_lateness_s: float = 3600.0):
        super().__init__()
        self.tables = {n: (str(d), s, tuple(p), tuple(o)) for n, (d, s, p, o) in tables.items()}
        self.window_s = window_s
        self.allowed_lateness_s = allowed_lateness_s

    def expand(self, pcolls: dict):
        from apache_beam.transforms import trigger, window

        return (
            pcolls
            | "AllTables" >> _TaggedByTable()
            | "FixedWindows"
            >> beam.WindowInto(
                window.FixedWindows(self.window_s),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                allowed_lateness=self.allowed_lateness_s,
            )
            | "ByTableAndWindow" >> beam.GroupByKey()
            | "WritePanes" >> beam.ParDo(_WritePaneFn(self.tables))
        )
