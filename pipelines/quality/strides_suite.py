"""Great Expectations suite for the ``strides`` table (grain: one row per stride per foot).

Validated per UTC date partition before the nightly job publishes anything derived from it.
Physiological ranges are loose on purpose (walking to sprinting); ``mostly`` tolerates the few strides
the feature step already flags with ``quality_ok = false``.
"""

from __future__ import annotations

import datetime as dt

import great_expectations as gx
import pandas as pd

from infra.settings import Paths
from pipelines import lake
from schemas.tables import STRIDES

SUITE_NAME = "strides"

#: the columns the suite reads (keeps the partition read small)
COLUMNS = [
    "runner_id",
    "session_id",
    "foot",
    "stride_id",
    "ic_time",
    "next_ic_time",
    "stride_time_s",
    "cadence_spm",
    "ground_contact_time_ms",
    "duty_factor",
    "glute_share",
    "hamstring_share",
    "calf_share",
    "pelvic_drop_deg",
    "quality_ok",
]


def expectations() -> list:
    E = gx.expectations
    return [
        E.ExpectTableColumnsToMatchSet(column_set=COLUMNS, exact_match=False),
        *[
            E.ExpectColumnValuesToNotBeNull(column=c)
            for c in ("runner_id", "session_id", "foot", "stride_id", "ic_time", "quality_ok")
        ],
        E.ExpectColumnValuesToBeInSet(column="foot", value_set=["left", "right"]),
        E.ExpectColumnValuesToBeUnique(column="stride_id"),
        E.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="next_ic_time",
            column_B="ic_time",
            or_equal=False,
            ignore_row_if="either_value_is_missing",
        ),
        E.ExpectColumnValuesToBeBetween(column="stride_time_s", min_value=0.3, max_value=2.5, mostly=0.99),
        E.ExpectColumnValuesToBeBetween(column="cadence_spm", min_value=60, max_value=260, mostly=0.99),
        E.ExpectColumnValuesToBeBetween(
            column="ground_contact_time_ms", min_value=50, max_value=1500, mostly=0.99
        ),
        E.ExpectColumnValuesToBeBetween(column="duty_factor", min_value=0, max_value=1, mostly=0.99),
        E.ExpectColumnValuesToBeBetween(column="glute_share", min_value=0, max_value=1),
        E.ExpectColumnValuesToBeBetween(column="hamstring_share", min_value=0, max_value=1),
        E.ExpectColumnValuesToBeBetween(column="calf_share", min_value=0, max_value=1),
        E.ExpectColumnValuesToBeBetween(column="pelvic_drop_deg", min_value=-30, max_value=30, mostly=0.99),
    ]


def load(paths: Paths, date: dt.date) -> pd.DataFrame | None:
    """The strides of one UTC date partition (only :data:`COLUMNS`), None when the partition is absent."""
    pdir = paths.table("strides") / f"date={date.isoformat()}"
    if not any(pdir.glob("*.parquet")):
        return None
    schema = STRIDES.remove(STRIDES.get_field_index("date"))
    return lake.read_table(pdir, schema, columns=COLUMNS, partition_cols=()).to_pandas()
