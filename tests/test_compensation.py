"""Compensation components: computability, re-weighting, baselines, and ranking of true traits."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from pipelines.daily import compute
from pipelines.daily.synthetic import random_traits, tables_for_fleet
from pipelines.daily.transforms import arrow_to_pandas
from pipelines.science import compensation as comp
from schemas.daily_table import COMPONENT_NAMES


def test_component_names_match_schema() -> None:
    assert comp.COMPONENT_NAMES == COMPONENT_NAMES
    assert {c.evidence for c in comp.COMPONENTS} <= set(comp.EVIDENCE_WEIGHT)


def test_linear_points_and_symmetry() -> None:
    assert comp.linear_points(np.array([0.0, 0.25, 1.0, np.nan]), 0.05, 0.45)[:3].tolist() == pytest.approx(
        [0, 50, 100]
    )
    assert comp.linear_points(160.0, 170.0, 150.0) == pytest.approx(50)  # decreasing scale (cadence)
    assert comp.symmetry_index_pct(210, 190) == pytest.approx(10.0)
    assert np.isnan(comp.symmetry_index_pct(np.nan, 190))


def _raw_frame(n: int, **values: float) -> pd.DataFrame:
    cols = {}
    for c in COMPONENT_NAMES:
        v = values.get(c, np.nan)
        cols[f"{c}_raw"] = [v] * n
        cols[f"{c}_sensors"] = ["x" if np.isfinite(v) else None] * n
    for extra in ("asymmetry_glute_si_pct", "cadence_spm", "fatigue_glute_drop_pct"):
        cols[extra] = [np.nan] * n
    return pd.DataFrame(cols)


def test_total_reweights_over_computable_components() -> None:
    # only pelvic drop (moderate, w=1) at 8 deg = 50 points and asymmetry (weak, w=0.7) at 3 % = 0 points
    out = comp.score_components(_raw_frame(1, pelvic_drop=8.0, asymmetry=3.0))
    assert out["compensation_components_available"].iloc[0] == 2
    assert out["pelvic_drop_points"].iloc[0] == pytest.approx(50)
    assert out["compensation_score"].iloc[0] == pytest.approx((1.0 * 50 + 0.7 * 0) / 1.7)
    assert not out["glute_deficit_computable"].iloc[0]
    assert np.isnan(out["glute_deficit_points"].iloc[0])  # missing is NULL, not 0
    none = comp.score_components(_raw_frame(1))
    assert (
        np.isnan(none["compensation_score"].iloc[0])
        and none["compensation_components_available"].iloc[0] == 0
    )


def test_personal_baseline() -> None:
    raw = _raw_frame(12, pelvic_drop=5.0)
    raw.loc[:9, "pelvic_drop_raw"] = [5.0, 5.2, 4.8, 5.1, 4.9, 5.0, 5.2, 4.8, 5.1, 4.9]
    raw.loc[10, "pelvic_drop_raw"] = np.nan  # a rest day in between
    raw.loc[11, "pelvic_drop_raw"] = 7.0
    out = comp.score_components(raw)
    assert np.isnan(out["pelvic_drop_baseline_z"].iloc[3])  # fewer than 5 previous values
    base = raw["pelvic_drop_raw"].iloc[:10]
    z = (7.0 - base.mean()) / max(base.std(ddof=1), 0.25 * 2.0)
    assert out["pelvic_drop_baseline_z"].iloc[11] == pytest.approx(z)
    assert out["pelvic_drop_vs_baseline_pct"].iloc[11] == pytest.approx(
        (7.0 - base.mean()) / base.mean() * 100
    )
    # population points at 7 deg would be 25; the personal jump (z = 4) gives 100
    assert out["pelvic_drop_points"].iloc[11] == pytest.approx(100)


def _daily_raw_for_fleet(traits, days: int = 14) -> pd.DataFrame:
    tabs = tables_for_fleet(traits, dt.date(2024, 3, 1), days, stride_every=3, seed=7)
    s, w, m = (arrow_to_pandas(tabs[k]) for k in ("strides", "watch_records", "sessions"))
    rows = []
    for (runner, session), g in w.groupby(["runner_id", "session_id"]):
        summ = compute.summarise_session(
            runner, session, s[s["session_id"] == session], g, m[m["session_id"] == session]
        )
        rows.append(summ)
    summaries = pd.DataFrame(rows)
    summaries["day"] = summaries["session_id"]
    per_session = pd.concat(
        [comp.day_components(g).assign(runner_id=r) for r, g in summaries.groupby("runner_id")],
        ignore_index=True,
    )
    return per_session.groupby("runner_id").mean(numeric_only=True)


def test_components_rank_runners_like_true_traits() -> None:
    traits = random_traits(16, seed=3)
    got = _daily_raw_for_fleet(traits)
    truth = pd.DataFrame([t.__dict__ for t in traits]).set_index("runner_id").loc[got.index]
    pairs = {
        "glute_deficit_raw": "glute_deficit",
        "calf_dominance_raw": "calf_dominance",
        "hamstring_dominance_raw": "hamstring_dominance",
        "pelvic_drop_raw": "pelvic_drop_deg",
        "asymmetry_raw": "asymmetry_pct",
        "overstride_raw": "foot_strike_deg",
        "fatigue_drift_raw": "fatigue_pct",
        "recruitment_inversion_raw": "inversion_rate",
    }
    rho = {k: spearmanr(got[k], truth[v]).statistic for k, v in pairs.items()}
    for k in (
        "glute_deficit_raw",
        "calf_dominance_raw",
        "hamstring_dominance_raw",
        "pelvic_drop_raw",
        "asymmetry_raw",
    ):
        assert rho[k] >= 0.8, rho
    assert rho["overstride_raw"] >= 0.8 and rho["fatigue_drift_raw"] >= 0.6, rho


def test_watch_only_asymmetry_from_gct_balance() -> None:
    traits = random_traits(10, seed=5, sensors="watch")
    got = _daily_raw_for_fleet(traits)
    truth = pd.DataFrame([t.__dict__ for t in traits]).set_index("runner_id").loc[got.index]
    assert spearmanr(got["asymmetry_raw"], truth["asymmetry_pct"]).statistic >= 0.8
    assert got["glute_deficit_raw"].isna().all() and got["overstride_raw"].isna().all()
