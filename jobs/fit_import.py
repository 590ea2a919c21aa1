"""FIT file import: decode per the FIT protocol, turn running sessions into WatchRecords + SessionMarkers, publish.

Decoder: fitdecode (chosen by measurement over Garmin's Python SDK, see docs/fit.md): header CRC 0x0000
("not computed"), compressed-timestamp record headers, chained files and multisport activities are accepted;
names and units are Garmin's profile. A file is decoded **completely** before anything is published: a corrupt
file (bad header, CRC error, unexpected end of file) publishes nothing but one ``corrupt_file`` dead letter
carrying the file's bytes.

Determinism (re-importing a file is idempotent downstream):

* ``session_id = "fit-" + sha1(file bytes)[:16] + "-" + <index of the session message in the file>``
* ``seq = 2 * <session start, s since the FIT epoch> + <message index within the session>`` (start marker 0,
  records 1..n, end marker n+1): contiguous within a session, unique across the sessions of one device as long as
  the device records at most ~2 messages per second (FIT record messages are at most 1 Hz).

Field mapping (FIT record -> WatchRecord): ``heart_rate`` -> ``heart_rate_bpm``; ``enhanced_speed``/``speed`` ->
``speed_m_s``; ``distance`` -> ``distance_m``; ``cadence`` (strides/min) + ``fractional_cadence`` ->
``cadence_spm = 2 x (cadence + fractional_cadence)``; ``stance_time`` -> ``ground_contact_time_ms``;
``stance_time_balance`` -> ``ground_contact_balance_left_pct``; ``vertical_oscillation`` (mm); ``vertical_ratio``
(%); ``step_length`` (mm); ``power`` (W); ``enhanced_altitude``/``altitude`` (m); ``position_lat/long``
(semicircles x 180 / 2^31 -> degrees); developer fields -> ``developer_fields["<name> [<units>]"]``.
Running-dynamics values of exactly 0 (written while standing, e.g. before the first step) and a heart rate of 0
mean "not measured" and become None.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas.events import Event, SessionMarker, WatchRecord
from schemas.validate import Rejection

STAGE = "import-fit"
#: FIT timestamps count seconds from 1989-12-31T00:00:00Z
FIT_EPOCH = datetime(1989, 12, 31, tzinfo=UTC)
FIT_EPOCH_UNIX_S = 631_065_600
SEMICIRCLE_DEG = 180.0 / 2**31
#: dead letters keep at most this many bytes of a corrupt file (the Kafka message limit is 8 MiB)
MAX_ORIGINAL_BYTES = 4 * 1024 * 1024
RUNNING_SPORTS = frozenset({"running"})
#: running-dynamics fields where 0 means "not measured"
_ZERO_IS_MISSING = (
    "ground_contact_time_ms",
    "ground_contact_balance_left_pct",
    "vertical_oscillation_mm",
    "vertical_ratio_pct",
    "step_length_mm",
    "heart_rate_bpm",
)


class FitDecodeError(ValueError):
    """The file is not a readable FIT file. ``problem`` is a short human-readable description."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def to_us(value: Any) -> int | None:
    """A FIT timestamp (datetime from the decoder, or raw seconds since the FIT epoch) as int microseconds UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    if isinstance(value, (int, float)):
        return int(round((float(value) + FIT_EPOCH_UNIX_S) * 1_000_000))
    return None


def _num(value: Any) -> float | None:
    """A finite number or None (the decoder yields None / tuples / strings for invalid or unusual values)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _first(msg: dict, *names: str) -> float | None:
    for name in names:
        v = _num(msg.get(name))
        if v is not None:
            return v
    return None


@dataclass
class FitSession:
    """One session message of the file with the records that fall in it."""

    index: int
    sport: str
    sub_sport: str | None
    start_us: int
    end_us: int
    summary: dict[str, Any]
    records: list[dict] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.sport in RUNNING_SPORTS


@dataclass
class DecodedFit:
    """Everything needed to publish one file, decoded before anything is sent."""

    path: str
    sha1: str
    device_id: str
    sessions: list[FitSession]
    records_without_time: int = 0

    @property
    def running_sessions(self) -> list[FitSession]:
        return [s for s in self.sessions if s.running]

    @property
    def skipped_sessions(self) -> list[FitSession]:
        return [s for s in self.sessions if not s.running]

    def session_id(self, session: FitSession) -> str:
        return f"fit-{self.sha1[:16]}-{session.index}"


#: what fitdecode raises for a file that breaks the FIT protocol (checked by the fuzz test in
#: tests/test_fit_protocol.py: byte flips and truncations raise nothing else)
def _decoder_errors() -> tuple[type[Exception], ...]:
    import fitdecode

    return (fitdecode.FitError, ValueError, KeyError, IndexError, OverflowError, TypeError, struct.error)


def _describe(err: Exception) -> str:
    """One short problem statement for a decoder exception."""
    import fitdecode

    text = str(err).strip()
    if isinstance(err, fitdecode.FitEOFError):
        return f"unexpected end of file: truncated ({text})"
    if isinstance(err, fitdecode.FitCRCError) and "header" in text:
        return f"bad file header: its CRC does not match ({text})"
    if isinstance(err, fitdecode.FitCRCError):
        return f"CRC error: the file's checksum does not match its content ({text})"
    if isinstance(err, fitdecode.FitHeaderError):
        return f"bad file header: {text}"
    if isinstance(err, fitdecode.FitError):
        return f"not decodable per the FIT protocol: {text}"
    return f"not decodable per the FIT protocol: {type(err).__name__}: {text}"


def _dev_label(name: Any, units: Any) -> str:
    """A developer field's name as the device wrote it, with its units: ``"Form Power [Watts]"``."""
    if isinstance(name, (list, tuple)):
        name = " ".join(str(n) for n in name if n)
    if isinstance(units, (list, tuple)):
        units = " ".join(str(u) for u in units if u)
    return f"{name} [{units}]" if units else str(name)


def _message_dict(frame) -> dict[str, Any]:
    """A data message as {profile field name: value}; developer fields under ``developer_fields``."""
    out: dict[str, Any] = {}
    dev: dict[str, Any] = {}
    for fld in frame.fields:
        if fld.value is None:
            continue  # FIT "invalid" value: the field was not measured in this message
        if fld.field_def is not None and fld.field_def.is_dev:
            dev[_dev_label(fld.name, fld.units)] = fld.value
        else:
            out[fld.name] = fld.value
    if dev:
        out["developer_fields"] = dev
    return out


def decode_fit_bytes(data: bytes) -> tuple[list[dict[str, list[dict]]], list[str]]:
    """Decode every FIT file in ``data`` (chained files included) with fitdecode.

    Returns (one {message name: [messages]} per file of the chain, problems); any problem means the file
    is corrupt. Header and file
    CRCs are checked when present (a header CRC of 0 means "not computed" in the FIT protocol and is
    accepted); compressed-timestamp record headers are expanded into ``timestamp``. Field names and units
    are those of Garmin's FIT profile (fitdecode's profile is generated from it).
    """
    import fitdecode

    files: list[dict[str, list[dict]]] = []
    if len(data) < 12 or data[8:12] != b".FIT":
        return [], ["bad file header: not a FIT file (no .FIT signature)"]
    try:
        with fitdecode.FitReader(
            io.BytesIO(data),
            check_crc=fitdecode.CrcCheck.RAISE,
            error_handling=fitdecode.ErrorHandling.RAISE,
            keep_raw_chunks=False,
        ) as reader:
            for frame in reader:
                if frame.frame_type == fitdecode.FIT_FRAME_HEADER:
                    files.append({})
                elif frame.frame_type == fitdecode.FIT_FRAME_DATA:
                    files[-1].setdefault(frame.name, []).append(_message_dict(frame))
    except _decoder_errors() as err:
        return files, [_describe(err)]
    return files, []


def _device_id(messages: dict[str, list[dict]], sha1: str) -> str:
    ids = messages.get("file_id") or []
    if not ids:
        return f"fit-{sha1[:12]}"
    fid = ids[0]
    parts = [str(fid.get("manufacturer") or "unknown")]
    product = fid.get("garmin_product") or fid.get("product")
    if product is not None:
        parts.append(str(product))
    if fid.get("serial_number") is not None:
        parts.append(str(fid["serial_number"]))
    return "-".join(parts).replace(" ", "_")


def _file_sessions(messages: dict[str, list[dict]], first_index: int) -> tuple[list[FitSession], int]:
    """The sessions of one FIT file (of a chain) with its records assigned; and its records without time."""
    timed: list[tuple[int, dict]] = []
    without_time = 0
    for rec in messages.get("record") or []:
        ts = to_us(rec.get("timestamp"))
        if ts is None:
            without_time += 1
        else:
            timed.append((ts, rec))
    timed.sort(key=lambda x: x[0])

    sessions: list[FitSession] = []
    for i, msg in enumerate(messages.get("session") or [], start=first_index):
        start = to_us(msg.get("start_time"))
        end = to_us(msg.get("timestamp"))
        elapsed = _num(msg.get("total_elapsed_time"))
        if start is None and end is not None and elapsed is not None:
            start = end - round(elapsed * 1e6)
        if start is None:
            continue
        if end is None:
            end = start + round((elapsed or 0.0) * 1e6)
        sub = msg.get("sub_sport")
        sport = str(msg.get("sport") or "unknown")
        sessions.append(FitSession(i, sport, None if sub is None else str(sub), start, end, msg))
    if not sessions and timed:
        # no session message: one session spanning the records, sport from the sport message if any
        sport_msgs = messages.get("sport") or []
        sport = str(sport_msgs[0].get("sport")) if sport_msgs and sport_msgs[0].get("sport") else "running"
        sessions.append(FitSession(first_index, sport, None, timed[0][0], timed[-1][0], {}))

    # each record belongs to the last session of its file that started at or before it (a multisport
    # activity: one session per sport); records before the first session go to the first one
    ordered = sorted(sessions, key=lambda s: s.start_us)
    k = 0
    for ts, rec in timed:
        while k + 1 < len(ordered) and ordered[k + 1].start_us <= ts:
            k += 1
        if ordered:
            ordered[k].records.append(rec)
    return sessions, without_time


def parse_fit(data: bytes, path: str = "<bytes>", device_id: str | None = None) -> DecodedFit:
    """Decode ``data`` fully (every file of a chain) and split each file's records into its sessions.
    Session indexes run on across the chain. Raises FitDecodeError when corrupt."""
    files, problems = decode_fit_bytes(data)
    if problems:
        raise FitDecodeError("; ".join(problems))
    sha1 = hashlib.sha1(data).hexdigest()
    sessions: list[FitSession] = []
    without_time = 0
    for messages in files:
        first_index = sum(len(m.get("session") or []) for m in files[: files.index(messages)])
        found, missing = _file_sessions(messages, first_index)
        sessions += found
        without_time += missing
    return DecodedFit(
        path=path,
        sha1=sha1,
        device_id=device_id or _device_id(files[0] if files else {}, sha1),
        sessions=sessions,
        records_without_time=without_time,
    )


def watch_record(rec: dict, runner_id: str, device_id: str, session_id: str, seq: int) -> WatchRecord:
    cadence = _num(rec.get("cadence"))
    cadence_spm = None if cadence is None else 2.0 * (cadence + (_num(rec.get("fractional_cadence")) or 0.0))
    lat, lon = _num(rec.get("position_lat")), _num(rec.get("position_long"))
    hr = _num(rec.get("heart_rate"))
    values = dict(
        heart_rate_bpm=int(hr) if hr is not None else None,
        speed_m_s=_first(rec, "enhanced_speed", "speed"),
        distance_m=_num(rec.get("distance")),
        cadence_spm=cadence_spm,
        ground_contact_time_ms=_num(rec.get("stance_time")),
        ground_contact_balance_left_pct=_num(rec.get("stance_time_balance")),
        vertical_oscillation_mm=_num(rec.get("vertical_oscillation")),
        vertical_ratio_pct=_num(rec.get("vertical_ratio")),
        step_length_mm=_num(rec.get("step_length")),
        power_w=_num(rec.get("power")),
        altitude_m=_first(rec, "enhanced_altitude", "altitude"),
        latitude_deg=lat * SEMICIRCLE_DEG if lat is not None else None,
        longitude_deg=lon * SEMICIRCLE_DEG if lon is not None else None,
    )
    for name in _ZERO_IS_MISSING:
        if values[name] == 0:
            values[name] = None
    developer: dict[str, float] = {}
    for label, value in (rec.get("developer_fields") or {}).items():
        v = _num(value)
        if v is not None:
            developer[label] = v
    return WatchRecord(
        runner_id=runner_id,
        device_id=device_id,
        session_id=session_id,
        seq=seq,
        timestamp_us=to_us(rec["timestamp"]),
        developer_fields=developer,
        **values,
    )


def summary_cadence_spm(summary: dict) -> float | None:
    """The session's own average cadence in steps/min (FIT stores strides/min + a 1/128 fraction)."""
    strides = _first(summary, "avg_running_cadence", "avg_cadence")
    if strides is None:
        return None
    return 2.0 * (strides + (_num(summary.get("avg_fractional_cadence")) or 0.0))


def session_events(decoded: DecodedFit, session: FitSession, runner_id: str) -> list[Event]:
    """Start marker, records, end marker (with the file's own summary) of one running session."""
    sid = decoded.session_id(session)
    base = 2 * max(0, session.start_us // 1_000_000 - FIT_EPOCH_UNIX_S)
    common = dict(runner_id=runner_id, device_id=decoded.device_id, session_id=sid)
    s = session.summary
    events: list[Event] = [
        SessionMarker(
            **common,
            seq=base,
            timestamp_us=session.start_us,
            marker="start",
            source="fit_import",
            sport=session.sport,
            sub_sport=session.sub_sport,
            sensors=["watch"],
        )
    ]
    for i, rec in enumerate(session.records, start=1):
        events.append(watch_record(rec, runner_id, decoded.device_id, sid, base + i))
    last_record_us = events[-1].timestamp_us if session.records else session.start_us
    events.append(
        SessionMarker(
            **common,
            seq=base + len(session.records) + 1,
            timestamp_us=max(session.end_us, last_record_us),
            marker="end",
            source="fit_import",
            sport=session.sport,
            sub_sport=session.sub_sport,
            sensors=["watch"],
            total_elapsed_s=_num(s.get("total_elapsed_time")),
            total_distance_m=_num(s.get("total_distance")),
            avg_heart_rate_bpm=_num(s.get("avg_heart_rate")),
            avg_cadence_spm=summary_cadence_spm(s),
        )
    )
    return events


@dataclass
class FileResult:
    """What one file produced."""

    path: str
    ok: bool
    error: str | None = None
    sessions: int = 0
    records: int = 0
    markers: int = 0
    skipped: list[str] = field(default_factory=list)  # "walking #0 (17 records)"
    dead_lettered: Counter = field(default_factory=Counter)
    session_ids: list[str] = field(default_factory=list)


def corrupt_dead_letter(path: str, data: bytes, problem: str, runner_id: str | None):
    """The one dead letter of a corrupt file: reason corrupt_file, original = (capped) file bytes."""
    from infra.publish import make_dead_letter

    detail = f"{Path(path).name}: {problem}"
    original = data
    if len(data) > MAX_ORIGINAL_BYTES:
        original = data[:MAX_ORIGINAL_BYTES]
        detail += f" (original truncated to the first {MAX_ORIGINAL_BYTES} of {len(data)} bytes)"
    letter = make_dead_letter(Rejection("corrupt_file", detail), STAGE, original, source_file=str(path))
    letter.runner_id = runner_id
    return letter


def import_file(publisher, path: str | Path, runner_id: str, device_id: str | None = None) -> FileResult:
    """Decode one file fully, then publish its running sessions (or one dead letter if it is corrupt)."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return FileResult(path, ok=False, error=f"cannot read file: {exc.strerror or exc}")
    try:
        decoded = parse_fit(data, path, device_id)
    except FitDecodeError as exc:
        # counted as one input received and dead-lettered, so the publisher's counts reconcile
        publisher.reject(corrupt_dead_letter(path, data, exc.problem, runner_id))
        publisher.flush()
        result = FileResult(path, ok=False, error=f"corrupt FIT file: {exc.problem}")
        result.dead_lettered["corrupt_file"] += 1
        return result
    result = FileResult(path, ok=True)
    for s in decoded.skipped_sessions:
        result.skipped.append(f"{s.sport} session #{s.index} ({len(s.records)} records, not running)")
    if decoded.records_without_time:
        result.skipped.append(f"{decoded.records_without_time} records without a timestamp")
    for session in decoded.running_sessions:
        result.sessions += 1
        result.session_ids.append(decoded.session_id(session))
        for event in session_events(decoded, session, runner_id):
            rejection = publisher.publish(event, source_file=path)
            if rejection is not None:
                result.dead_lettered[rejection.reason] += 1
            elif isinstance(event, WatchRecord):
                result.records += 1
            else:
                result.markers += 1
    publisher.flush()
    return result


def import_files(
    bootstrap: str,
    paths: Sequence[str | Path],
    runner_id: str,
    device_id: str | None = None,
    now_us: int | None = None,
    on_file=None,
) -> tuple[list[FileResult], Any]:
    """Import every file (a bad one does not stop the others). Returns (per-file results, publish counts)."""
    from infra.publish import Publisher

    results: list[FileResult] = []
    with Publisher(bootstrap, STAGE, now_us=now_us) as publisher:
        for p in paths:
            result = import_file(publisher, p, runner_id, device_id)
            results.append(result)
            if on_file is not None:
                on_file(result)
        counts = publisher.counts
    return results, counts


def records_of(events: Iterable[Event]) -> list[WatchRecord]:
    return [e for e in events if isinstance(e, WatchRecord)]
