"""What the FIT protocol allows is imported; what breaks it is rejected cleanly.

Protocol cases are built as small files here (tests/fit_bytes.py writes them byte by byte): a header CRC of
0x0000 ("not computed"), compressed-timestamp record headers, chained files, a multisport activity, and the
corrupt variants. A fuzz corpus of byte flips, truncations and appended garbage over the fixtures checks that
the importer never crashes or hangs: every case is a clean import or a clean rejection, and each is counted.
"""

from __future__ import annotations

import random
import signal
from contextlib import contextmanager

import pytest
from conftest import FIXTURES
from fit_bytes import T0, compressed_run, multisport, recompute_file_crc, record_values
from typer.testing import CliRunner

from infra.inspect_topics import read_events
from jobs.cli import app
from jobs.fit_import import FIT_EPOCH_UNIX_S, FitDecodeError, parse_fit, session_events
from schemas.codec import encode
from schemas.events import WatchRecord
from schemas.validate import check

FIT_DIR = FIXTURES / "fit"
needs_fixtures = pytest.mark.skipif(
    not FIT_DIR.exists(), reason=f"{FIT_DIR} not found: needs the real FIT files in ../shared/fixtures/fit"
)


def us(fit_s: int) -> int:
    return (fit_s + FIT_EPOCH_UNIX_S) * 1_000_000


def events_of(data: bytes, runner: str = "r") -> list:
    decoded = parse_fit(data)
    return [e for s in decoded.running_sessions for e in session_events(decoded, s, runner)]


# ------------------------------------------------------------------------------------ protocol cases


def test_compressed_timestamp_headers_give_the_protocol_timestamps():
    data, times = compressed_run()
    decoded = parse_fit(data)
    assert [(s.sport, len(s.records)) for s in decoded.sessions] == [("running", len(times))]
    records = [e for e in events_of(data) if isinstance(e, WatchRecord)]
    assert [r.timestamp_us for r in records] == [us(t) for t in times]
    assert [r.heart_rate_bpm for r in records] == [record_values(i)[0] for i in range(len(times))]
    assert [r.distance_m for r in records] == pytest.approx([i * 3.0 for i in range(len(times))])
    assert [r.cadence_spm for r in records] == [2.0 * record_values(i)[3] for i in range(len(times))]
    assert all(r.speed_m_s == pytest.approx(3.0) for r in records)


def test_header_crc_zero_is_accepted_and_decodes_like_the_original():
    data, _ = compressed_run()
    no_header_crc, _ = compressed_run()
    no_header_crc = recompute_file_crc(no_header_crc[:12] + b"\x00\x00" + no_header_crc[14:])
    assert no_header_crc[12:14] == b"\x00\x00" and no_header_crc != data

    def comparable(events):
        return [{k: v for k, v in vars(e).items() if k != "session_id"} for e in events]

    assert comparable(events_of(no_header_crc)) == comparable(events_of(data))


@needs_fixtures
def test_header_crc_zero_on_a_real_device_file():
    original = (FIT_DIR / "garmin-fenix-5-run.fit").read_bytes()
    zeroed = recompute_file_crc(original[:12] + b"\x00\x00" + original[14:])
    assert original[12:14] != b"\x00\x00"
    a, b = parse_fit(original), parse_fit(zeroed)
    assert [s.records for s in a.sessions] == [s.records for s in b.sessions]
    assert len(b.running_sessions[0].records) == 21


def test_multisport_activity_keeps_only_its_running_session():
    decoded = parse_fit(multisport())
    assert [(s.sport, len(s.records)) for s in decoded.sessions] == [
        ("cycling", 10),
        ("transition", 5),
        ("running", 15),
    ]
    records = [e for e in events_of(multisport()) if isinstance(e, WatchRecord)]
    assert [r.timestamp_us for r in records] == [us(T0 + i) for i in range(15, 30)]


def test_chained_files_import_every_running_session(kafka, paths, tmp_path):
    first, t1 = compressed_run(serial=1)
    second = multisport(header_crc=False)
    path = tmp_path / "chained.fit"
    path.write_bytes(first + second)
    decoded = parse_fit(path.read_bytes())
    assert [s.sport for s in decoded.sessions] == ["running", "cycling", "transition", "running"]

    result = CliRunner().invoke(app, ["import-fit", str(path), "--runner", "r"])
    assert result.exit_code == 0, result.output
    assert "2 running sessions" in result.stdout
    records = read_events(kafka, "watch_records")
    markers = read_events(kafka, "sessions")
    # the first file's run and the second file's run, nothing from the ride or the transition
    assert sorted(r.timestamp_us for r in records) == sorted(
        [us(t) for t in t1] + [us(T0 + i) for i in range(15, 30)]
    )
    assert len(markers) == 4 and read_events(kafka, "dead_letters") == []


def corrupt_cases() -> dict[str, tuple[bytes, str]]:
    good, _ = compressed_run()
    bad_header_crc = good[:12] + bytes([good[12] ^ 0xFF, good[13]]) + good[14:]
    return {
        "file CRC wrong": (good[:-1] + bytes([good[-1] ^ 0x01]), "CRC error"),
        "truncated": (good[:-20], "unexpected end of file"),
        "header size 13": (bytes([13]) + good[1:], "bad file header"),
        "no .FIT signature": (good[:8] + b".FTT" + good[12:], "bad file header"),
        "header CRC present but wrong": (recompute_file_crc(bad_header_crc), "bad file header"),
        "declared size beyond the end": (
            good[:4] + (len(good) * 2).to_bytes(4, "little") + good[8:12] + b"\0\0" + good[14:],
            "end of",
        ),
        "garbage after a good file": (good + b"\x00garbage-garbage", "bad file header"),
    }


@pytest.mark.parametrize("case", list(corrupt_cases()))
def test_corrupt_variants_are_rejected_with_one_reason(case):
    data, expected = corrupt_cases()[case]
    with pytest.raises(FitDecodeError) as err:
        parse_fit(data)
    assert expected in err.value.problem
    assert "\n" not in err.value.problem


def test_corrupt_crafted_file_is_one_dead_letter(kafka, paths, tmp_path):
    data, _ = corrupt_cases()["truncated"]
    path = tmp_path / "cut.fit"
    path.write_bytes(data)
    result = CliRunner().invoke(app, ["import-fit", str(path), "--runner", "r"])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cut.fit" in lines[0] and "unexpected end of file" in lines[0]
    letters = read_events(kafka, "dead_letters")
    assert [(x.reason, x.original) for x in letters] == [("corrupt_file", data)]
    assert read_events(kafka, "watch_records") == [] and read_events(kafka, "sessions") == []


# ------------------------------------------------------------------------------------------ fuzzing


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging) when one import takes longer than ``seconds``."""

    def boom(*_):
        raise TimeoutError(f"import still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def import_outcome(data: bytes) -> str:
    """What import_file does before sending: decode fully, build every event, validate and encode it."""
    with deadline(10):
        try:
            events = events_of(data)
        except FitDecodeError:
            return "rejected"
        for event in events:
            check(event)
            encode(event)
    return "imported"


def mutations(data: bytes, rng: random.Random, n: int) -> list[tuple[str, bytes]]:
    out = []
    for _ in range(n):
        kind = rng.choice(["flip", "flip+crc", "truncate", "append"])
        if kind.startswith("flip"):
            buf = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(len(buf) - 2 if kind == "flip+crc" else len(buf))] ^= 1 << rng.randrange(8)
            mutated = recompute_file_crc(bytes(buf)) if kind == "flip+crc" else bytes(buf)
        elif kind == "truncate":
            mutated = data[: rng.randrange(len(data))]
        else:
            mutated = data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        if mutated != data:
            out.append((kind, mutated))
    return out


def fuzz_corpus() -> list[tuple[str, bytes]]:
    seeds = [compressed_run()[0], multisport()]
    if FIT_DIR.exists():
        seeds += [(FIT_DIR / n).read_bytes() for n in ("garmin-fenix-5-run.fit", "garmin-fenix-5-walk.fit")]
    rng = random.Random(20261202)
    return [m for seed in seeds for m in mutations(seed, rng, 400 // len(seeds))]


def test_fuzzed_files_are_imported_or_rejected_cleanly():
    corpus = fuzz_corpus()
    assert len(corpus) >= 300
    counts: dict[tuple[str, str], int] = {}
    for kind, data in corpus:
        outcome = import_outcome(data)  # any other exception or a hang fails the test
        counts[kind, outcome] = counts.get((kind, outcome), 0) + 1
    print("fuzz outcomes:", dict(sorted(counts.items())))
    # the file CRC catches every change it covers; a truncated file or appended bytes are never a FIT file
    for kind in ("flip", "truncate", "append"):
        assert counts.get((kind, "imported"), 0) == 0, counts
    assert sum(counts.values()) == len(corpus)
    # flips behind a recomputed CRC reach the decoder itself: some still decode, some do not
    assert counts.get(("flip+crc", "rejected"), 0) > 0
