"""`gluteflow import-fit` on the real FIT fixtures, against the real broker, read back from Kafka.

What we publish is compared with each file's own session summary (the device's numbers) and, for the
fenix-5 run, with the record listing garmin-fenix-5-run-records.csv that ships with the fixtures.
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import fixtures_dir
from garmin_fit_sdk import Decoder, Stream
from typer.testing import CliRunner

from infra.inspect_topics import dead_letter_reasons, read_events, topic_message_counts
from jobs.cli import app
from jobs.fit_import import MAX_ORIGINAL_BYTES, corrupt_dead_letter, parse_fit, to_us
from schemas.events import DeadLetter, SessionMarker, WatchRecord

pytestmark = pytest.mark.fixtures

RUNS = ["activity-small-fenix2-run.fit", "developer-types-sample.fit", "garmin-fenix-5-run.fit"]
CORRUPT = ["activity-filecrc.fit", "activity-settings-corruptheader.fit", "activity-unexpected-eof.fit"]


def fit(name: str) -> Path:
    return fixtures_dir("fit") / name


def sdk_messages(path: Path) -> dict:
    messages, errors = Decoder(Stream.from_file(str(path))).read()
    assert not errors
    return messages


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args))


def published(bootstrap: str) -> tuple[list[WatchRecord], list[SessionMarker], list[DeadLetter]]:
    return (
        read_events(bootstrap, "watch_records"),
        read_events(bootstrap, "sessions"),
        read_events(bootstrap, "dead_letters"),
    )


def time_weighted_mean(times_us: np.ndarray, values: np.ndarray) -> float:
    """Mean of a 1 Hz-or-slower series where each value holds until the next record (last one: 1 s)."""
    ok = ~np.isnan(values)
    times_us, values = times_us[ok], values[ok]
    dt = np.diff(np.append(times_us, times_us[-1] + 1_000_000)).astype(float)
    return float(np.sum(values * dt) / np.sum(dt))


def mostly_1hz(times_us: np.ndarray) -> bool:
    return float(np.mean(np.diff(times_us) == 1_000_000)) >= 0.95


@pytest.mark.parametrize("name", RUNS)
def test_run_matches_its_own_session_summary(name, kafka, paths):
    path = fit(name)
    result = run_cli("import-fit", str(path), "--runner", "runner-a")
    assert result.exit_code == 0, result.output
    assert "1 running session" in result.stdout

    records, markers, letters = published(kafka)
    summary = sdk_messages(path)["session_mesgs"][0]
    n_file_records = len(sdk_messages(path)["record_mesgs"])

    assert letters == []
    assert len(records) == n_file_records
    assert [m.marker for m in sorted(markers, key=lambda m: m.seq)] == ["start", "end"]
    start, end = sorted(markers, key=lambda m: m.seq)
    assert {r.session_id for r in records} == {start.session_id} == {end.session_id}
    assert all(r.runner_id == "runner-a" and r.device_id == start.device_id for r in records)
    # per-device seq: contiguous within the session, start marker first, end marker last
    seqs = sorted(r.seq for r in records)
    assert seqs == list(range(start.seq + 1, end.seq))

    records.sort(key=lambda r: r.timestamp_us)
    t = np.array([r.timestamp_us for r in records], dtype=np.int64)

    # distance within 1 %
    distance = max(r.distance_m for r in records if r.distance_m is not None)
    assert distance == pytest.approx(summary["total_distance"], rel=0.01)
    # duration: first to last record vs the device's elapsed time (records are whole seconds)
    duration_s = (t[-1] - start.timestamp_us) / 1e6
    assert abs(duration_s - summary["total_elapsed_time"]) <= max(2.0, 0.01 * summary["total_elapsed_time"])
    assert start.timestamp_us == to_us(summary["start_time"])

    # average heart rate within 1 bpm (when the device wrote one)
    if summary.get("avg_heart_rate") is not None:
        hr = np.array([np.nan if r.heart_rate_bpm is None else r.heart_rate_bpm for r in records], float)
        assert abs(time_weighted_mean(t, hr) - summary["avg_heart_rate"]) <= 1.0

    # average cadence in steps/min; FIT keeps strides/min (+ an optional 1/128 fraction)
    cad = np.array([np.nan if r.cadence_spm is None else r.cadence_spm for r in records], float)
    mean_spm = time_weighted_mean(t, cad)
    strides = summary.get("avg_running_cadence", summary.get("avg_cadence"))
    if mostly_1hz(t):
        if summary.get("avg_fractional_cadence") is None:
            # the summary truncates strides/min to an integer: the true mean lies in [2c, 2c + 2) spm
            assert 2 * strides - 1.0 <= mean_spm <= 2 * strides + 2 + 1.0, (mean_spm, strides)
        else:
            assert abs(mean_spm - 2 * (strides + summary["avg_fractional_cadence"])) <= 1.0
    else:
        # "smart recording" (records every 1-9 s): the device averaged its internal 1 Hz stream,
        # which the file does not contain, so only a few percent agreement is possible
        expected = 2 * (strides + (summary.get("avg_fractional_cadence") or 0))
        assert mean_spm == pytest.approx(expected, rel=0.04)

    # the end marker carries the file's own summary
    assert end.total_elapsed_s == pytest.approx(summary["total_elapsed_time"])
    assert end.total_distance_m == pytest.approx(summary["total_distance"])
    assert end.avg_heart_rate_bpm == summary.get("avg_heart_rate")
    assert end.avg_cadence_spm == pytest.approx(2 * (strides + (summary.get("avg_fractional_cadence") or 0)))
    assert end.source == "fit_import" and end.sport == "running"


def test_fenix5_run_has_running_dynamics(kafka, paths):
    assert run_cli("import-fit", str(fit("garmin-fenix-5-run.fit")), "--runner", "r").exit_code == 0
    records, _, _ = published(kafka)
    moving = [r for r in records if r.cadence_spm]
    assert len(moving) >= 15

    def median(name):
        return float(np.median([getattr(r, name) for r in moving]))

    # typical running dynamics of an easy run (medians; the first steps are irregular)
    assert 230 < median("ground_contact_time_ms") < 300
    assert 50 < median("ground_contact_balance_left_pct") < 54
    assert 60 < median("vertical_oscillation_mm") < 100
    assert 6 < median("vertical_ratio_pct") < 10
    assert 800 < median("step_length_mm") < 1300
    assert 170 < median("cadence_spm") < 190
    # standing still at the start: no ground contact measured (None, not 0)
    first = min(records, key=lambda r: r.timestamp_us)
    assert first.cadence_spm == 0 and first.ground_contact_time_ms is None
    # positions in degrees (the run is in the US Pacific north-west)
    assert all(38 < r.latitude_deg < 39 and -123 < r.longitude_deg < -122 for r in records)


def test_fenix5_run_matches_record_listing_csv(kafka, paths):
    assert run_cli("import-fit", str(fit("garmin-fenix-5-run.fit")), "--runner", "r").exit_code == 0
    records, _, _ = published(kafka)
    by_time = {r.timestamp_us: r for r in records}
    pdt = timezone(timedelta(hours=-7))
    rows = list(csv.DictReader((fixtures_dir("fit") / "garmin-fenix-5-run-records.csv").open()))
    assert len(rows) == len(records)
    for row in rows:
        when = datetime.strptime(row["timestamp"].replace("PDT ", ""), "%a %b %d %H:%M:%S %Y")
        ts = int(when.replace(tzinfo=pdt).astimezone(UTC).timestamp()) * 1_000_000
        r = by_time[ts]
        assert r.heart_rate_bpm == int(row["heart_rate"])
        assert math.floor(r.cadence_spm / 2) == int(row["cadence"])  # CSV: whole strides/min
        assert r.speed_m_s == pytest.approx(float(row["speed"]), abs=1e-3)
        assert r.distance_m == pytest.approx(float(row["distance"]), abs=1e-2)
        assert r.latitude_deg == pytest.approx(int(row["position_lat"]) * 180 / 2**31, abs=1e-9)
        assert r.longitude_deg == pytest.approx(int(row["position_long"]) * 180 / 2**31, abs=1e-9)
        assert r.altitude_m == pytest.approx(float(row["altitude"]), abs=0.11)


def test_stryd_developer_fields(kafka, paths):
    path = fit("developer-types-sample.fit")
    assert run_cli("import-fit", str(path), "--runner", "r").exit_code == 0
    records, _, _ = published(kafka)
    expected = {"Form Power [Watts]", "Leg Spring Stiffness [KN/m]", "Speed [M/S]", "Distance [Meters]"}
    assert all(set(r.developer_fields) == expected for r in records)
    assert all(r.power_w is not None for r in records)
    # values as the SDK reads them, matched by timestamp
    by_time = {r.timestamp_us: r for r in records}
    sdk_records = sdk_messages(path)["record_mesgs"]
    for rec in sdk_records[::500]:
        mine = by_time[to_us(rec["timestamp"])]
        dev = rec["developer_fields"]
        assert mine.developer_fields["Form Power [Watts]"] == dev[0]
        assert mine.developer_fields["Leg Spring Stiffness [KN/m]"] == pytest.approx(dev[1])
        assert mine.power_w == rec["power"]
    lss = [r.developer_fields["Leg Spring Stiffness [KN/m]"] for r in records]
    assert 5 < float(np.median(lss)) < 20  # plausible running leg stiffness, kN/m


def test_walk_and_ride_are_skipped(kafka, paths):
    result = run_cli(
        "import-fit",
        str(fit("garmin-fenix-5-walk.fit")),
        str(fit("garmin-fenix-5-bike.fit")),
        "--runner",
        "r",
    )
    assert result.exit_code == 0, result.output
    assert "skipped walking session #0 (17 records, not running)" in result.stdout
    assert "skipped cycling session #0 (19 records, not running)" in result.stdout
    assert published(kafka) == ([], [], [])


def test_multisport_file_keeps_its_running_session(kafka, paths, tmp_path):
    """A chained walk + run file: two sessions, records assigned by time; only the run is published."""
    both = tmp_path / "walk-then-run.fit"
    both.write_bytes(fit("garmin-fenix-5-walk.fit").read_bytes() + fit("garmin-fenix-5-run.fit").read_bytes())
    decoded = parse_fit(both.read_bytes(), str(both))
    assert [(s.sport, len(s.records)) for s in decoded.sessions] == [("walking", 17), ("running", 21)]

    result = run_cli("import-fit", str(both), "--runner", "r")
    assert result.exit_code == 0, result.output
    records, markers, _ = published(kafka)
    assert len(records) == 21 and len(markers) == 2
    run_start = to_us(sdk_messages(fit("garmin-fenix-5-run.fit"))["session_mesgs"][0]["start_time"])
    assert min(r.timestamp_us for r in records) == run_start
    assert {r.session_id for r in records} == {decoded.session_id(decoded.sessions[1])}


@pytest.mark.parametrize("name", CORRUPT)
def test_corrupt_file_is_dead_lettered_whole(name, kafka, paths):
    path = fit(name)
    result = run_cli("import-fit", str(path), "--runner", "runner-c")
    assert result.exit_code != 0
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, result.stderr
    assert name in error_lines[0] and "corrupt FIT file" in error_lines[0]

    records, markers, letters = published(kafka)
    assert records == [] and markers == []
    assert len(letters) == 1
    letter = letters[0]
    assert letter.reason == "corrupt_file" and letter.stage == "import-fit"
    assert letter.original == path.read_bytes()
    assert letter.source_file == str(path)
    assert letter.runner_id == "runner-c"
    assert name in letter.detail


def test_corrupt_file_does_not_stop_the_others(kafka, paths):
    result = run_cli(
        "import-fit", str(fit("activity-filecrc.fit")), str(fit("garmin-fenix-5-run.fit")), "--runner", "r"
    )
    assert result.exit_code == 1
    assert "CRC error" in result.stderr
    records, markers, letters = published(kafka)
    assert len(records) == 21 and len(markers) == 2 and len(letters) == 1
    reasons = dead_letter_reasons(kafka)
    assert reasons == {"corrupt_file": 1}
    counts = topic_message_counts(kafka)
    assert sum(counts.values()) == 21 + 2 + 1

    out = run_cli("counts")
    assert out.exit_code == 0, out.output
    assert "corrupt_file" in out.stdout and "21" in out.stdout


def test_reimport_is_deterministic(kafka, paths):
    path = str(fit("garmin-fenix-5-run.fit"))
    assert run_cli("import-fit", path, "--runner", "r").exit_code == 0
    assert run_cli("import-fit", path, "--runner", "r").exit_code == 0
    records, markers, _ = published(kafka)
    keys = [(r.device_id, r.session_id, r.seq, r.timestamp_us) for r in records]
    assert len(keys) == 42 and len(set(keys)) == 21  # same ids twice: duplicates are detectable downstream
    assert len({(m.session_id, m.seq) for m in markers}) == 2


def test_device_id_option(kafka, paths):
    path = str(fit("garmin-fenix-5-run.fit"))
    assert run_cli("import-fit", path, "--runner", "r", "--device-id", "watch-7").exit_code == 0
    records, markers, _ = published(kafka)
    assert {r.device_id for r in records} | {m.device_id for m in markers} == {"watch-7"}
    # default device id comes from the file's file_id message
    assert parse_fit(Path(path).read_bytes()).device_id == "garmin-fenix5-3945849289"


def test_missing_file_is_a_clear_error(kafka, paths, tmp_path):
    result = run_cli("import-fit", str(tmp_path / "nope.fit"), "--runner", "r")
    assert result.exit_code == 1
    assert "nope.fit" in result.stderr and "cannot read file" in result.stderr
    assert published(kafka) == ([], [], [])


def test_huge_corrupt_file_original_is_capped():
    data = b"\x0e" + b"x" * (MAX_ORIGINAL_BYTES + 10)
    letter = corrupt_dead_letter("/uploads/big.fit", data, "bad file header", "r")
    assert len(letter.original) == MAX_ORIGINAL_BYTES
    assert "truncated" in letter.detail and "big.fit" in letter.detail


def test_stryd_developer_fields_selectable_from_the_catalog(kafka, paths):
    """Developer fields keep their names and units through the whole chain: import-fit -> Kafka ->
    the stream job -> the lake's watch_records -> the catalog's SQL."""
    from jobs.fit_import import session_events
    from jobs.stream_driver import StreamOptions, run
    from pipelines.catalog.builder import build_catalog, connect_catalog

    path = fit("developer-types-sample.fit")
    decoded = parse_fit(path.read_bytes(), str(path))
    records = [
        e
        for s in decoded.running_sessions
        for e in session_events(decoded, s, "r")
        if isinstance(e, WatchRecord)
    ]
    assert run_cli("import-fit", str(path), "--runner", "r").exit_code == 0
    run(StreamOptions(kafka, paths, workers=1), until_idle_s=0.0)
    con = connect_catalog(build_catalog(paths))

    units = con.execute(
        "SELECT field_name, units, count(*) FROM watch_developer_fields GROUP BY ALL ORDER BY 1"
    ).fetchall()
    n = len(records)
    assert units == [
        ("Distance", "Meters", n),
        ("Form Power", "Watts", n),
        ("Leg Spring Stiffness", "KN/m", n),
        ("Speed", "M/S", n),
    ]
    # values equal what Garmin's SDK reads from the same records (developer field 0: Form Power, 1: LSS)
    sdk = {to_us(r["timestamp"]): r["developer_fields"] for r in sdk_messages(path)["record_mesgs"]}
    got = con.execute(
        "SELECT epoch_us(timestamp), field_name, value FROM watch_developer_fields "
        "WHERE field_name IN ('Form Power', 'Leg Spring Stiffness')"
    ).fetchall()
    assert len(got) == 2 * n
    for ts, name, value in got:
        assert value == pytest.approx(sdk[ts][0 if name == "Form Power" else 1])
    # the map column itself is selectable by label too
    power = con.execute(
        "SELECT median(developer_fields['Form Power [Watts]']) FROM stg_watch_records"
    ).fetchone()[0]
    assert 50 < power < 150  # W: plausible Stryd form power for an easy run
