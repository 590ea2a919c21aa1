"""FIT file import: decode with Garmin's SDK, turn running sessions into WatchRecords + SessionMarkers, publish.

A file is decoded **completely** before anything is published: a corrupt file (bad header, CRC error, unexpected
end of file) publishes nothing but one ``corrupt_file`` dead letter carrying the file's bytes.

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
import math
import re
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
    """A FIT timestamp (datetime from the SDK, or raw seconds since the FIT epoch) as int microseconds UTC."""
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
    """A finite number or None (the SDK yields None / lists / strings for invalid or unusual values)."""
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
    developer_keys: dict[Any, str] = field(default_factory=dict)

    @property
    def running_sessions(self) -> list[FitSession]:
        return [s for s in self.sessions if s.running]

    @property
    def skipped_sessions(self) -> list[FitSession]:
        return [s for s in self.sessions if not s.running]

    def session_id(self, session: FitSession) -> str:
        return f"fit-{self.sha1[:16]}-{session.index}"


def _describe_sdk_error(err: Exception, size: int) -> str:
    """Turn the SDK's error text into a short problem statement."""
    text = str(err).replace("FIT Runtime Error", "").strip(" :")
    m = re.match(r"at byte:?\s*(\d+)\s*(.*)", text)
    where, what = (f" at byte {m.group(1)}", m.group(2).strip()) if m else ("", text)
    if isinstance(err, IndexError) or "bytes remaining" in what:
        return f"unexpected end of file: truncated after {size} bytes ({what})"
    if "crc" in what.lower():
        return f"CRC error{where}: the file's checksum does not match its content"
    if "not a fit file" in what.lower():
        return f"bad file header{where}: not a FIT file header"
    return f"{what}{where}"


def decode_fit_bytes(data: bytes, path: str = "<bytes>") -> tuple[dict[str, list[dict]], list[str]]:
    """Decode with Garmin's SDK. Returns (messages, problems); any problem means the file is corrupt."""
    from garmin_fit_sdk import Decoder, Stream

    problems: list[str] = []
    if not Decoder(Stream.from_byte_array(bytearray(data))).is_fit():
        problems.append("not a FIT file (bad file header)")
        return {}, problems
    messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
    for err in errors:
        problems.append(_describe_sdk_error(err, len(data)))
    # check_integrity checks the header CRC, the declared size and the file CRC of the first FIT file
    if not problems and not Decoder(Stream.from_byte_array(bytearray(data))).check_integrity():
        problems.append("integrity check failed (declared size or CRC does not match)")
    return messages, problems


def _device_id(messages: dict[str, list[dict]], sha1: str) -> str:
    ids = messages.get("file_id_mesgs") or []
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


def _developer_keys(messages: dict[str, list[dict]]) -> dict[Any, str]:
    """SDK developer-field key -> '<name> [<units>]' from the file's field_description messages."""
    out: dict[Any, str] = {}
    for desc in messages.get("field_description_mesgs") or []:
        name = desc.get("field_name")
        if isinstance(name, list):
            name = " ".join(str(n) for n in name if n)
        units = desc.get("units")
        if isinstance(units, list):
            units = " ".join(str(u) for u in units if u)
        key = desc.get("key")
        if key is None:
            continue
        label = str(
            name or f"developer_{desc.get('developer_data_index', 0)}_{desc.get('field_definition_number')}"
        )
        out[key] = f"{label} [{units}]" if units else label
    return out


def parse_fit(data: bytes, path: str = "<bytes>", device_id: str | None = None) -> DecodedFit:
    """Decode ``data`` fully and split its records into its sessions. Raises FitDecodeError when corrupt."""
    messages, problems = decode_fit_bytes(data, path)
    if problems:
        raise FitDecodeError("; ".join(problems))
    sha1 = hashlib.sha1(data).hexdigest()
    records = messages.get("record_mesgs") or []
    timed: list[tuple[int, dict]] = []
    without_time = 0
    for rec in records:
        ts = to_us(rec.get("timestamp"))
        if ts is None:
            without_time += 1
        else:
            timed.append((ts, rec))
    timed.sort(key=lambda x: x[0])

    sessions: list[FitSession] = []
    for i, msg in enumerate(messages.get("session_mesgs") or []):
        start = to_us(msg.get("start_time"))
        end = to_us(msg.get("timestamp"))
        elapsed = _num(msg.get("total_elapsed_time"))
        if start is None and end is not None and elapsed is not None:
            start = end - round(elapsed * 1e6)
        if start is None:
            continue
        if end is None:
            end = start + round((elapsed or 0.0) * 1e6)
        sessions.append(
            FitSession(
                index=i,
                sport=str(msg.get("sport") or "unknown"),
                sub_sport=str(msg["sub_sport"]) if msg.get("sub_sport") is not None else None,
                start_us=start,
                end_us=end,
                summary=msg,
            )
        )
    if not sessions and timed:
        # no session message: one session spanning the records, sport from the sport message if any
        sport_msgs = messages.get("sport_mesgs") or []
        sport = str(sport_msgs[0].get("sport")) if sport_msgs and sport_msgs[0].get("sport") else "running"
        sessions.append(FitSession(0, sport, None, timed[0][0], timed[-1][0], {}))

    # each record belongs to the last session that started at or before it (earlier ones to the first session)
    ordered = sorted(sessions, key=lambda s: s.start_us)
    k = 0
    for ts, rec in timed:
        while k + 1 < len(ordered) and ordered[k + 1].start_us <= ts:
            k += 1
        if ordered:
            ordered[k].records.append(rec)
    return DecodedFit(
        path=path,
        sha1=sha1,
        device_id=device_id or _device_id(messages, sha1),
        sessions=sessions,
        records_without_time=without_time,
        developer_keys=_developer_keys(messages),
    )


def watch_record(
    rec: dict, runner_id: str, device_id: str, session_id: str, seq: int, dev_keys: dict
) -> WatchRecord:
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
    for key, value in (rec.get("developer_fields") or {}).items():
        v = _num(value)
        if v is not None:
            developer[dev_keys.get(key, f"developer_{key}")] = v
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
        events.append(watch_record(rec, runner_id, decoded.device_id, sid, base + i, decoded.developer_keys))
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
