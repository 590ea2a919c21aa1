"""Injury-risk scoring on hand-made cases (pipelines.science.risk: pure numpy/pandas)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipelines.science.risk import DRIVERS, RiskParams, build_features, level_for, score_features
from schemas.risk_table import DRIVER_KEYS

D = dt.date(2025, 6, 30)


def feats(**cols: object) -> pd.DataFrame:
    """One runner's features; every trend metric absent unless given."""
    row = {"runner_id": "r1"}
    row.update(cols)
    return pd.DataFrame([row])


def trend(metric: str, recent: float, baseline: float, days: int = 20) -> dict:
    return {f"{metric}_recent": recent, f"{metric}_baseline": baseline, f"{metric}_baseline_days": days}


def one(df: pd.DataFrame) -> pd.Series:
    return score_features(df).iloc[0]


def test_driver_keys_match_schema() -> None:
    assert tuple(DRIVERS) == DRIVER_KEYS


def test_nothing_measured_is_low_with_everything_not_computable() -> None:
    r = one(feats())
    assert r.risk_score == 0 and r.risk_level == "low" and r.n_drivers == 0
    assert r.top_driver is None and r.drivers == [] and r.likely_sites == []
    assert set(r.not_computable) == set(DRIVER_KEYS)


@pytest.mark.parametrize(
    ("ratio", "days", "points"),
    [
        (1.09, 0, 0.0),  # under the 10 % threshold
        (1.10, 0, 0.0),  # "more than 10 %"
        (1.15, 0, 30 + 60 * 0.05),  # 33
        (1.35, 0, 45.0),  # 30 + 15 = 45 (the cap)
        (2.00, 0, 45.0),
        (1.35, 7, 45.0 * 0.5),  # fades linearly over 14 days
    ],
)
def test_distance_spike_points(ratio: float, days: int, points: float) -> None:
    r = one(
        feats(
            spike_ratio=ratio, spike_days_ago=days, longest_run_m=10_000 * ratio, prev30_longest_run_m=10_000
        )
    )
    assert r.points_distance_spike == pytest.approx(points, abs=0.01)


def test_fresh_spike_alone_is_elevated_and_strong() -> None:
    r = one(feats(spike_ratio=1.35, spike_days_ago=1, longest_run_m=13_500, prev30_longest_run_m=10_000))
    assert r.risk_level == "elevated"
    assert r.top_driver == "distance_spike" and r.top_driver_grade == "strong"
    assert "longest run +35 % over the longest of the previous 30 days" in r.reasons
    assert "13.5 km vs 10.0 km, 1 day ago" in r.reasons


def test_acwr_alone_never_lifts_a_runner_out_of_low() -> None:
    r = one(feats(acwr=3.0))
    assert r.points_acwr == DRIVERS["acwr"].max_points  # capped at 10
    assert r.score_without_acwr == 0 and r.risk_level == "low"
    assert r.risk_score == 10.0


def test_acwr_cannot_cross_a_level_boundary() -> None:
    # 25 points of evidence-based drivers + 10 of ACWR: still low (capped just under 30)
    base = {
        **trend("pelvic_drop", 6.75, 4.5),
        **trend("calf_dominance", 0.225, 0.05),  # calf share 0.35 -> 0.525
    }  # +50 % each -> 15 + 10
    r = one(feats(acwr=2.0, **base))
    assert r.score_without_acwr == pytest.approx(25.0)
    assert r.risk_level == "low" and r.risk_score == pytest.approx(29.9)
    # with a fresh spike it is elevated; ACWR cannot make it high
    r = one(feats(acwr=2.0, spike_ratio=1.2, spike_days_ago=0, **base))  # 36 + 25 = 61 -> high on its own
    assert r.risk_level == "high"
    r = one(feats(acwr=2.0, spike_ratio=1.12, spike_days_ago=0, **trend("pelvic_drop", 6.75, 4.5)))
    assert r.score_without_acwr == pytest.approx(46.2) and r.risk_level == "elevated"
    assert r.risk_score == pytest.approx(54.9)  # 56.2 capped under the high boundary


def test_calf_compensation_relative_to_own_baseline() -> None:
    # raw = calf share - 0.30: share 0.35 -> 0.49 is +40 % of the runner's share
    r = one(feats(**trend("calf_dominance", 0.19, 0.05)))
    assert r.points_calf_dominance == pytest.approx(10 * (0.40 - 0.15) / 0.35, abs=0.01)
    d = r.drivers[0]
    assert d["driver"] == "calf_dominance" and d["grade"] == "weak"
    assert d["change_pct"] == pytest.approx(40.0)
    assert d["reason"] == "calf compensation up 40 % on your 4-week baseline"
    assert r.likely_sites == ["Achilles", "calf", "plantar fascia"]


def test_share_components_trend_on_the_share_not_the_raw_offset() -> None:
    # raw values near 0 or negative (shares at/below the reference): the ratio of raws would flip sign
    r = one(feats(**trend("calf_dominance", -0.01, -0.04)))  # share 0.26 -> 0.29: +11.5 %, below 15 %
    assert r.points_calf_dominance == 0
    r = one(feats(**trend("calf_dominance", 0.08, -0.04)))  # share 0.26 -> 0.38: +46 %
    assert r.points_calf_dominance == pytest.approx(10 * (0.12 / 0.26 - 0.15) / 0.35, abs=0.05)
    # glute deficit: raw = 0.41 - glute share; share 0.41 -> 0.287 is a 30 % drop = +30 % deficit
    r = one(feats(**trend("glute_deficit", 0.123, 0.0)))
    assert r.points_glute_deficit == pytest.approx(10 * (0.30 - 0.15) / 0.35, abs=0.05)
    r = one(feats(**trend("glute_deficit", -0.05, 0.0)))  # more glute than before: nothing
    assert r.points_glute_deficit == 0


def test_trend_needs_enough_baseline_days() -> None:
    r = one(feats(**trend("calf_dominance", 0.8, 0.4, days=2)))
    assert r.points_calf_dominance == 0 and "calf_dominance" in r.not_computable


def test_small_changes_score_nothing() -> None:
    r = one(feats(**trend("pelvic_drop", 5.7, 5.0)))  # +14 %
    assert r.points_pelvic_drop == 0 and "pelvic_drop" not in r.not_computable


@pytest.mark.parametrize(
    ("metric", "sites", "grade"),
    [
        ("pelvic_drop", ["IT band", "knee"], "moderate"),
        ("hamstring_dominance", ["hamstring"], "weak"),
        ("overstride", ["hip", "knee"], "moderate"),
        ("recruitment_inversion", ["hamstring", "low back"], "contested"),
        ("lumbar_compensation", ["low back"], "weak"),
    ],
)
def test_sites_and_grades(metric: str, sites: list[str], grade: str) -> None:
    r = one(feats(**trend(metric, 2.0, 1.0)))
    assert sorted(r.likely_sites) == sorted(sites)
    assert r.top_driver_grade == grade


def test_low_step_rate_absolute_and_relative() -> None:
    r = one(feats(cadence_spm_recent=150.0))
    assert r.points_low_step_rate == pytest.approx(8.0)
    assert r.drivers[0]["reason"] == "low step rate 150 spm"
    r = one(feats(**trend("cadence_spm", 168.0, 180.0)))  # -6.7 %: under the 15 % trend start, above 165
    assert r.points_low_step_rate == 0
    r = one(feats(**trend("cadence_spm", 153.0, 180.0)))  # -15 % and 153 spm
    assert r.points_low_step_rate == pytest.approx(8 * 12 / 15)


def test_level_boundaries() -> None:
    assert list(level_for(np.array([0, 29.9, 30, 54.9, 55, 100]))) == [
        "low",
        "low",
        "elevated",
        "elevated",
        "high",
        "high",
    ]


def test_drivers_sorted_and_sites_ranked_by_points() -> None:
    r = one(
        feats(
            spike_ratio=1.3,
            spike_days_ago=0,
            **trend("hamstring_dominance", 0.235, 0.01),  # share 0.30 -> 0.525: +75 % -> 10
            **trend("pelvic_drop", 6.0, 5.0),  # +20 % -> 15 * 0.05 / 0.35
        )
    )
    assert [d["driver"] for d in r.drivers] == ["distance_spike", "hamstring_dominance", "pelvic_drop"]
    assert r.likely_sites[:2] == ["overuse injury (any site)", "hamstring"]
    assert r.risk_score == pytest.approx(np.floor((42 + 10 + 15 * 0.05 / 0.35) * 10) / 10)


def history(rows: list[tuple[int, float]], runner: str = "r1", **extra: object) -> pd.DataFrame:
    """Daily rows: (days before D, longest run m)."""
    return pd.DataFrame(
        [
            {"runner_id": runner, "local_date": D - dt.timedelta(days=o), "longest_run_m": m, **extra}
            for o, m in rows
        ]
    )


def test_build_features_spike_against_previous_30_days() -> None:
    h = history([(o, 10_000.0) for o in range(3, 40)] + [(2, 13_500.0), (0, 5_000.0)])
    f = build_features(h, D).set_index("runner_id").loc["r1"]
    assert f.spike_ratio == pytest.approx(1.35) and f.spike_days_ago == 2
    assert f.longest_run_m == 13_500 and f.prev30_longest_run_m == 10_000
    assert f.days_with_runs_28d == 28 - 1  # day 1 had no run


def test_build_features_window_excludes_older_longest_run() -> None:
    # the 20 km run 35 days ago is outside the 30 days before today's run (other days: rest-day rows)
    runs = {35: 20_000.0, 10: 8_000.0, 0: 9_000.0}
    h = history([(o, runs.get(o, 0.0)) for o in range(0, 40)])
    f = build_features(h, D).iloc[0]
    assert f.spike_ratio == pytest.approx(9_000 / 8_000)


def test_build_features_recent_vs_baseline_and_computable_flag() -> None:
    rows = []
    for o in range(0, 35):
        rows.append(
            {
                "runner_id": "r1",
                "local_date": D - dt.timedelta(days=o),
                "calf_dominance": 0.1 if o < 7 else 0.02,  # calf share 0.32 -> 0.40: +25 %
                "calf_dominance_computable": True,
                "pelvic_drop": 9.0,
                "pelvic_drop_computable": False,  # value ignored when not computable
            }
        )
    f = build_features(pd.DataFrame(rows), D).iloc[0]
    assert f.calf_dominance_recent == pytest.approx(0.1) and f.calf_dominance_baseline == pytest.approx(0.02)
    assert f.calf_dominance_baseline_days == 28
    assert np.isnan(f.pelvic_drop_recent) and not f.pelvic_drop_available
    r = score_features(build_features(pd.DataFrame(rows), D)).iloc[0]
    assert "pelvic_drop" in r.not_computable and r.points_calf_dominance > 0


def test_spike_needs_four_weeks_of_history() -> None:
    # one week of data: the "longest run of the previous 30 days" is unknown, so no spike is claimed
    short = history([(o, 5_000.0) for o in range(1, 7)] + [(0, 9_000.0)])
    f = build_features(short, D).iloc[0]
    assert np.isnan(f.spike_ratio)
    r = score_features(build_features(short, D)).iloc[0]
    assert "distance_spike" in r.not_computable and r.points_distance_spike == 0
    # the same run with 30 days of rows behind it is a spike
    full = history([(o, 5_000.0 if o % 3 == 0 else 0.0) for o in range(1, 31)] + [(0, 9_000.0)])
    assert build_features(full, D).iloc[0].spike_ratio == pytest.approx(9_000 / 5_000)


def test_rows_after_the_report_date_are_ignored() -> None:
    h = history([(o, 10_000.0) for o in range(1, 31)] + [(-1, 30_000.0)])
    f = build_features(h, D).iloc[0]
    assert f.spike_ratio == pytest.approx(1.0)


def test_params_are_respected() -> None:
    p = RiskParams(elevated_at=20, high_at=40)
    r = score_features(feats(spike_ratio=1.2, spike_days_ago=0), p).iloc[0]
    assert r.risk_level == "elevated"  # 36 points


def test_recruitment_inversion_from_a_zero_baseline_counts_in_fraction_points() -> None:
    # hamstrings first in 0 % of baseline strides, 66 % now: +66 points -> full 5; 10 points -> nothing
    r = one(feats(**trend("recruitment_inversion", 0.66, 0.0)))
    assert r.points_recruitment_inversion == pytest.approx(5.0)
    assert "recruitment_inversion" not in r.not_computable
    assert (
        r.drivers[0]["reason"]
        == "hamstrings firing before glutes in 66% of strides, 0% on your 4-week baseline"
    )
    quiet = one(feats(**trend("recruitment_inversion", 0.10, 0.0)))
    assert quiet.points_recruitment_inversion == 0 and "recruitment_inversion" not in quiet.not_computable
