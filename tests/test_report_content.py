"""What the nightly report says: true reasons for what it could not compute, every runner's compensation
profile, file names that never collide, and a CSV a spreadsheet cannot run."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.nightly.job import compute_risk, risk_to_arrow
from pipelines.report.render import cohort_slug, render_cohort
from pipelines.science.compensation import GLUTE_SHARE_REF

D = dt.date(2026, 11, 8)
FULL_KIT = {"watch", "foot_imu", "pelvis_imu", "emg"}


def days(runner: str, n: int, **values: float) -> list[dict]:
    """``n`` consecutive daily rows ending on D, each with a 5 km run and the given metric values."""
    rows = []
    for i in range(n):
        row = {
            "runner_id": runner,
            "local_date": D - dt.timedelta(days=n - 1 - i),
            "cohort": "club",
            "distance_m": 5000.0,
            "longest_run_m": 5000.0,
            "duration_s": 1800.0,
            "strides": 2400.0,
            "spike_ratio": 1.0,
        }
        for k, v in values.items():
            row[k] = v
            if k in ("pelvic_drop", "glute_deficit", "calf_dominance", "hamstring_dominance", "asymmetry"):
                row[f"{k}_computable"] = True
        rows.append(row)
    return rows


EMG = dict(glute_deficit=0.2, calf_dominance=0.12, hamstring_dominance=0.08, recruitment_inversion=0.8)


@pytest.fixture(scope="module")
def scored() -> tuple[pd.DataFrame, pd.DataFrame]:
    history = pd.DataFrame(
        days("pelvis7", 7, pelvic_drop=6.0, asymmetry=3.0, compensation_score=40.0, glute_share=0.3, **EMG)
        + days("watchonly", 7, compensation_score=np.nan)
        + days(
            "chronic", 40, pelvic_drop=7.0, asymmetry=2.0, compensation_score=60.0, glute_share=0.21, **EMG
        )
    )
    runners = pd.DataFrame({"runner_id": ["pelvis7", "watchonly", "chronic"], "cohort": ["club"] * 3})
    worn = {"pelvis7": FULL_KIT, "watchonly": {"watch"}, "chronic": FULL_KIT}
    return compute_risk(history, runners, D, worn=worn), history


def whys(scored: pd.DataFrame, runner: str) -> dict[str, dict]:
    row = scored.set_index("runner_id").loc[runner]
    return {w["driver"]: w for w in row["not_computable_why"]}


def test_pelvis_runner_with_a_week_of_history_is_told_history_not_sensor(scored) -> None:
    frame, _ = scored
    w = whys(frame, "pelvis7")
    assert {k for k, v in w.items() if v["kind"] == "no_sensor"} == {"lumbar_compensation"}
    assert not any("pelvis IMU" in v["reason"] or "EMG" in v["reason"] for v in w.values())
    drop = w["pelvic_drop"]
    assert drop["kind"] == "history" and "0 of the 4 days" in drop["reason"]
    # 7 measured days (D-6..D); the baseline of D+a spans D+a-34 .. D+a-7 and holds a of them: 4 on D+4
    assert drop["ready_on"] == D + dt.timedelta(days=4)
    spike = w["distance_spike"]
    # rows on D-6..D: a run on D+22 has rows on 28 of its previous 30 days
    assert spike["kind"] == "history" and "6 of the 28 days" in spike["reason"]
    assert spike["ready_on"] == D + dt.timedelta(days=22)


def test_runner_without_the_sensor_is_told_which_one(scored) -> None:
    frame, _ = scored
    w = whys(frame, "watchonly")
    assert w["pelvic_drop"]["kind"] == "no_sensor" and w["pelvic_drop"]["reason"] == "needs a pelvis IMU"
    assert w["glute_deficit"]["reason"] == "needs EMG shorts"
    assert w["fatigue_drift"]["kind"] == "no_long_run"  # 30-min runs: no long run to compare halves of


def test_report_names_reasons_per_runner_and_profiles_everyone(scored, tmp_path: Path) -> None:
    frame, history = scored
    html = render_cohort(tmp_path, "club", D, frame, history, None, risk_to_arrow(frame)).read_text()
    section = html[html.index('id="not-computed"') :]
    rows = re.findall(
        r"<tr><td>(.*?)</td><td>(.*?)</td><td class=\"num\">\d+</td><td class=\"small\">(.*?)</td>", section
    )
    assert rows, "the not-computed table has rows"
    for _drivers, why, who in rows:
        if "pelvis IMU" in why or "EMG" in why:
            assert "pelvis7" not in who and "chronic" not in who, (why, who)
    assert any("pelvis7" in who and "not enough history" in why for _, why, who in rows)

    profiles = html[html.index('id="profiles"') : html.index('id="cohort"')]
    for runner in ("pelvis7", "watchonly", "chronic"):
        assert runner in profiles
    chronic = profiles[profiles.index("chronic") :]
    chronic = chronic[: chronic.index("</tr>")]
    assert "glutes under-work" in chronic and "standing" in chronic
    assert f"{GLUTE_SHARE_REF - 0.2:.0%}" in chronic  # glute share = reference - glute_deficit raw
    assert "<svg" in chronic  # the 8-week sparkline


def test_csv_carries_the_reasons(scored, tmp_path: Path) -> None:
    frame, history = scored
    render_cohort(tmp_path, "club", D, frame, history, None)
    rows = {r["runner_id"]: r for r in csv.DictReader((tmp_path / "club.csv").open())}
    assert "pelvic_drop: not enough history" in rows["pelvis7"]["not_computable_reasons"]
    assert "pelvic_drop: needs a pelvis IMU" in rows["watchonly"]["not_computable_reasons"]


def test_cohort_slugs_never_collide(scored, tmp_path: Path) -> None:
    names = ["club/x", "club x", "club-x", "club:x", "club-x-0123456789ab", "..", "=cmd|' /C calc'!A0", ""]
    slugs = [cohort_slug(n) for n in names]
    assert len(set(slugs)) == len(names)
    assert cohort_slug("club-x") == "club-x" and cohort_slug("harbour-harriers") == "harbour-harriers"
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", s) for s in slugs)
    frame, history = scored
    for name in ("club/x", "club x"):
        render_cohort(tmp_path, name, D, frame.assign(cohort=name), history, None)
    htmls = sorted(tmp_path.glob("*.html"))
    assert len(htmls) == 2 and len(list(tmp_path.glob("*.csv"))) == 2
    assert {re.search(r"<title>.*?· (.*?) ·", p.read_text()).group(1) for p in htmls} == {"club/x", "club x"}


def test_csv_cells_cannot_run_as_formulas(scored, tmp_path: Path) -> None:
    frame, history = scored
    evil = '=HYPERLINK("http://evil","x")'
    frame = frame.assign(cohort=evil)
    frame.loc[frame["runner_id"] == "chronic", "runner_id"] = "@SUM(1+1)"
    path = render_cohort(tmp_path, evil, D, frame, history, None).with_suffix(".csv")
    cells = [c for row in csv.reader(io.StringIO(path.read_text())) for c in row]
    for cell in cells:
        if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
            float(cell)  # only numbers may start like a formula
    rows = list(csv.DictReader(path.open()))
    assert {r["cohort"] for r in rows} == {"'" + evil}
    assert "'@SUM(1+1)" in {r["runner_id"] for r in rows}
