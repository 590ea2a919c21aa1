"""Great Expectations suite for the ``injury_risk`` table (grain: one row per runner per report date).

Run on the freshly scored frame *before* it is published: a failure leaves the lake, the catalog and the
reports as they were. Besides ranges and uniqueness it checks the two scoring promises: the level follows
``score_without_acwr`` (ACWR never decides alone) and ACWR's points stay within their cap.
"""

from __future__ import annotations

import great_expectations as gx
import numpy as np
import pandas as pd

from pipelines.science.risk import DRIVERS, RiskParams, level_for
from schemas.risk_table import DRIVER_KEYS

SUITE_NAME = "injury_risk"


def frame_for_validation(risk: pd.DataFrame, params: RiskParams | None = None) -> pd.DataFrame:
    """The flat columns of the risk table plus derived checks (list/struct columns dropped)."""
    nested = ("drivers", "likely_sites", "not_computable", "not_computable_why")
    flat = risk[[c for c in risk.columns if c not in nested]].copy()
    flat["level_follows_score_without_acwr"] = (
        level_for(flat["score_without_acwr"].to_numpy(dtype=float), params) == flat["risk_level"].to_numpy()
        if len(flat)
        else np.array([], dtype=bool)
    )
    return flat


def expectations() -> list:
    E = gx.expectations
    exps = [
        E.ExpectColumnValuesToNotBeNull(column="runner_id"),
        E.ExpectColumnValuesToBeUnique(column="runner_id"),
        E.ExpectColumnValuesToNotBeNull(column="cohort"),
        E.ExpectColumnValuesToBeBetween(column="risk_score", min_value=0, max_value=100),
        E.ExpectColumnValuesToNotBeNull(column="risk_score"),
        E.ExpectColumnValuesToBeInSet(column="risk_level", value_set=["low", "elevated", "high"]),
        E.ExpectColumnValuesToBeInSet(column="level_follows_score_without_acwr", value_set=[True]),
        E.ExpectColumnValuesToBeBetween(
            column="points_acwr", min_value=0, max_value=DRIVERS["acwr"].max_points
        ),
        E.ExpectColumnValuesToBeInSet(
            column="top_driver_grade", value_set=["strong", "moderate", "weak", "contested"]
        ),
        E.ExpectColumnValuesToBeBetween(column="spike_ratio", min_value=0, max_value=20),
        E.ExpectColumnValuesToBeBetween(column="days_with_runs_28d", min_value=0, max_value=28),
        E.ExpectColumnValuesToNotBeNull(column="model_version"),
    ]
    exps += [
        E.ExpectColumnValuesToBeBetween(
            column=f"points_{k}", min_value=0, max_value=DRIVERS[k].max_points + 1e-6
        )
        for k in DRIVER_KEYS
    ]
    return exps
