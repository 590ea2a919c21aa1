"""The Parquet lake: hive-partitioned tables with atomic, idempotent file writes.

Layout: ``<lake>/<table>/<key>=<value>/<file>.parquet``. The partition column is not stored in the
files (readers restore it from the path). Every write goes to a temporary file in the same
directory, is fsynced, then ``os.replace``-d onto its deterministic name: a rerun replaces, never
duplicates, and a reader never sees a half-written file. Files are zstd-compressed with row-group
statistics, sorted by the caller's sort keys for pruning.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 128 * 1024


def _fmt(value: object) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def partition_dir(table_dir: Path, partition: dict[str, object]) -> Path:
    out = table_dir
    for key, value in partition.items():
        out = out / f"{key}={_fmt(value)}"
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(table: pa.Table, path: Path, sort_by: Sequence[str] = ()) -> Path:
    """Write ``table`` to ``path`` atomically (tmp file + fsync + rename), sorted by ``sort_by``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if sort_by and table.num_rows:
        table = table.sort_by([(c, "ascending") for c in sort_by])
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            row_group_size=ROW_GROUP_ROWS,
            write_statistics=True,
            use_dictionary=True,
        )
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_partitioned(
    table: pa.Table,
    table_dir: Path,
    partition_cols: Sequence[str],
    file_name: str,
    sort_by: Sequence[str] = (),
) -> list[Path]:
    """Split ``table`` by ``partition_cols`` and write one file named ``file_name`` per partition.

    ``file_name`` must be deterministic for the data (e.g. ``part-<batch>.parquet``) so that a rerun
    replaces the same files.
    """
    if table.num_rows == 0:
        return []
    written = []
    keys = table.select(list(partition_cols)).group_by(list(partition_cols)).aggregate([])
    for row in keys.to_pylist():
        mask = None
        for col in partition_cols:
            cond = pc.equal(table[col], pa.scalar(row[col], table.schema.field(col).type))
            mask = cond if mask is None else pc.and_(mask, cond)
        part = table.filter(mask).drop_columns(list(partition_cols))
        written.append(
            write_file_atomic(
                part, partition_dir(table_dir, {c: row[c] for c in partition_cols}) / file_name, sort_by
            )
        )
    return written


def replace_partition(
    table: pa.Table, table_dir: Path, partition: dict[str, object], sort_by: Sequence[str] = ()
) -> Path:
    """Make ``table`` the whole content of one partition (one file ``part-0.parquet``; other files removed)."""
    pdir = partition_dir(table_dir, partition)
    target = write_file_atomic(
        table.drop_columns([c for c in partition if c in table.column_names]),
        pdir / "part-0.parquet",
        sort_by,
    )
    for other in pdir.glob("*.parquet"):
        if other != target:
            other.unlink(missing_ok=True)
    return target


def partition_key(table_dir: Path) -> str | None:
    """The hive key of a table's first partition level (``date``, ``local_date``, ...); None when empty."""
    if not table_dir.exists():
        return None
    for child in sorted(table_dir.iterdir()):
        if child.is_dir() and "=" in child.name and not child.name.startswith((".", "_")):
            return child.name.split("=", 1)[0]
    return None


def dataset(
    table_dir: Path, schema: pa.Schema | None = None, partition_cols: Iterable[str] = ("date",)
) -> ds.Dataset:
    """A pyarrow dataset over a hive-partitioned table, partition columns typed from ``schema``."""
    part_fields = [
        schema.field(c) if schema is not None and c in schema.names else pa.field(c, pa.string())
        for c in partition_cols
    ]
    partitioning = ds.partitioning(pa.schema(part_fields), flavor="hive")
    file_schema = None
    if schema is not None:
        file_schema = pa.schema([f for f in schema if f.name not in set(partition_cols)] + part_fields)
    return ds.dataset(
        table_dir,
        format="parquet",
        partitioning=partitioning,
        schema=file_schema,
        exclude_invalid_files=False,
        ignore_prefixes=[".", "_"],
    )


def read_table(
    table_dir: Path,
    schema: pa.Schema | None = None,
    filter: ds.Expression | None = None,
    columns: list[str] | None = None,
    partition_cols: Iterable[str] = ("date",),
) -> pa.Table:
    """Read a lake table (empty table with ``schema`` when the directory has no files)."""
    if not table_dir.exists() or not any(table_dir.rglob("*.parquet")):
        if schema is None:
            return pa.table({})
        empty = schema.empty_table()
        return empty.select(columns) if columns else empty
    table = dataset(table_dir, schema, partition_cols).to_table(filter=filter, columns=columns)
    if schema is not None and columns is None:
        table = table.select(schema.names)
    return table
