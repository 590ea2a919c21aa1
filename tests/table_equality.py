"""Whole-table equality for the stream tests: every column of every row (floats exact or within 1e-9
relative), so a test cannot pass while some rows' values differ."""

from __future__ import annotations

import math

import pyarrow as pa

REL_TOL = 1e-9


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    return a == b


def assert_tables_equal(got: pa.Table, want: pa.Table, key: str) -> None:
    """Same schema, same keys, and per key every column equal; the message names what differs."""
    assert got.schema.names == want.schema.names, (got.schema.names, want.schema.names)
    g = {r[key]: r for r in got.to_pylist()}
    w = {r[key]: r for r in want.to_pylist()}
    assert len(g) == got.num_rows and len(w) == want.num_rows, "duplicate keys"
    assert g.keys() == w.keys(), (sorted(set(g) - set(w))[:5], sorted(set(w) - set(g))[:5])
    diffs: dict[str, int] = {}
    example: dict[str, tuple] = {}
    for k, wr in w.items():
        for name, b in wr.items():
            a = g[k][name]
            if not _same(a, b):
                diffs[name] = diffs.get(name, 0) + 1
                example.setdefault(name, (k, a, b))
    assert not diffs, {name: (n, example[name]) for name, n in diffs.items()}
