"""The analyst questions of ``docs/queries.md``, parsed (title, SQL, expected columns) for tests and the bench."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOC", "Query", "load_queries"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "queries.md"


@dataclass(frozen=True)
class Query:
    number: int
    title: str
    sql: str
    columns: tuple[str, ...]
    expect_rows: bool  # "Expect: rows" (else "Expect: any")


def load_queries(path: Path = DOC) -> list[Query]:
    """Every ``### N. title`` section with a ```sql block, its ``Columns:`` and ``Expect:`` lines."""
    text = path.read_text()
    out = []
    for m in re.finditer(r"^### (\d+)\. (.+?)$(.*?)(?=^### |\Z)", text, flags=re.M | re.S):
        body = m.group(3)
        sql = re.search(r"```sql\n(.*?)```", body, flags=re.S)
        if not sql:
            continue
        cols = re.search(r"^Columns: (.+)$", body, flags=re.M)
        expect = re.search(r"^Expect: (\w+)", body, flags=re.M)
        out.append(
            Query(
                number=int(m.group(1)),
                title=m.group(2).strip(),
                sql=sql.group(1).strip(),
                columns=tuple(re.findall(r"`([^`]+)`", cols.group(1))) if cols else (),
                expect_rows=bool(expect and expect.group(1) == "rows"),
            )
        )
    return out
