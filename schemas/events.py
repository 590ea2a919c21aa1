"""In-memory event types, one dataclass per Avro kind (field names and units as in schemas/README.md).

Times are ``int`` microseconds since the Unix epoch, UTC. Sensor samples are float32 numpy arrays:
IMU acceleration in m/s^2 (gravity included), angular rate in deg/s, EMG envelope in uV.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from schemas.registry import field_names, latest_version

#: channel names and units per sensor kind (axes: gaitmap sensor frame, see schemas/README.md)
IMU_CHANNELS: dict[str, str] = {
    "acc_x": "m/s^2",
    "acc_y": "m/s^2",
    "acc_z": "m/s^2",
    "gyr_x": "deg/s",
    "gyr_y": "deg/s",
    "gyr_z": "deg/s",
}
EMG_MUSCLES: tuple[str, ...] = (
    "gluteus_maximus",
    "gluteus_medius",
    "hamstrings",
    "gastrocnemius",
    "vastus_lateralis",
)
EMG_CHANNELS: dict[str, str] = {f"{m}_{s}": "uV" for m in EMG_MUSCLES for s in ("left", "right")}
SENSOR_CHANNELS: dict[str, dict[str, str]] = {
    "foot_imu": IMU_CHANNELS,
    "pelvis_imu": IMU_CHANNELS,
    "emg": EMG_CHANNELS,
}
#: allowed sampling rate per sensor kind, Hz (inclusive)
SAMPLE_RATE_RANGE_HZ: dict[str, tuple[float, float]] = {
    "foot_imu": (50.0, 2000.0),
    "pelvis_imu": (50.0, 2000.0),
    "emg": (20.0, 4000.0),
}


_ATOMS = frozenset({str, int, float, bool, bytes, type(None)})


def _copy_value(value: Any) -> Any:
    """What ``dataclasses.asdict`` makes of a field value (fast for flat lists/dicts of atoms)."""
    t = type(value)
    if t is list and all(type(x) in _ATOMS for x in value):
        return list(value)
    if t is dict and all(type(k) in _ATOMS and type(v) in _ATOMS for k, v in value.items()):
        return dict(value)
    return dataclasses.asdict(_Box(value)).get("value")


def sample_offsets_us(n_samples: int, sample_rate_hz: float) -> np.ndarray:
    """Offsets of a block's samples from its start, int64 us: ``round(i * 1e6 / rate)``."""
    return np.round(np.arange(n_samples) * (1e6 / sample_rate_hz)).astype(np.int64)


@dataclass
class _Box:
    value: Any


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _record_field_names(cls: type) -> tuple[str, ...]:
    try:
        return _FIELD_NAMES[cls]
    except KeyError:
        names = _FIELD_NAMES[cls] = tuple(
            f.name for f in dataclasses.fields(cls) if f.name != "schema_version"
        )
        return names


@dataclass
class _RecordEvent:
    """Base for events whose Avro record maps 1:1 onto dataclass fields."""

    KIND: ClassVar[str] = ""

    def to_record(self) -> dict[str, Any]:
        """The Avro record dict (same as ``dataclasses.asdict`` minus ``schema_version``: containers
        are copied, so mutating the record never touches the event)."""
        rec = self._record_view()
        for name, value in rec.items():
            if type(value) not in _ATOMS:
                rec[name] = _copy_value(value)
        return rec

    def _record_view(self) -> dict[str, Any]:
        """The record dict sharing the event's containers (read-only use: encoding)."""
        d = self.__dict__
        return {name: d[name] for name in _record_field_names(type(self))}

    @classmethod
    def from_record(cls, rec: dict[str, Any], version: int) -> _RecordEvent:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in rec.items() if k in names}, schema_version=version)

    @property
    def key(self) -> bytes:
        """Kafka partitioning key: the runner, so one runner's events stay ordered."""
        return str(getattr(self, "runner_id", "") or "").encode()


def _sensor_block_header_names() -> tuple[str, ...]:
    global _SENSOR_BLOCK_HEADER
    if _SENSOR_BLOCK_HEADER is None:
        _SENSOR_BLOCK_HEADER = tuple(n for n in field_names("sensor_block") if n != "channels")
    return _SENSOR_BLOCK_HEADER


_SENSOR_BLOCK_HEADER: tuple[str, ...] | None = None


@dataclass
class SensorBlock:
    """A contiguous run of samples of one sensor unit. Sample i is at
    ``start_time_us + round(i * 1e6 / sample_rate_hz)`` on the device clock."""

    KIND: ClassVar[str] = "sensor_block"

    runner_id: str
    device_id: str
    session_id: str
    seq: int
    sensor: str  # foot_imu | pelvis_imu | emg
    side: str  # left | right | center
    start_time_us: int
    sample_rate_hz: float
    n_samples: int
    channels: dict[str, np.ndarray]
    units: dict[str, str]
    battery_pct: int | None = None
    firmware: str | None = None
    schema_version: int = field(default_factory=lambda: latest_version("sensor_block"))

    def header_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _sensor_block_header_names()}

    @property
    def key(self) -> bytes:
        return self.runner_id.encode()

    @property
    def end_time_us(self) -> int:
        """Time just after the last sample (start + n / rate)."""
        return self.start_time_us + round(self.n_samples * 1e6 / self.sample_rate_hz)

    def times_us(self) -> np.ndarray:
        """Sample times, int64 microseconds UTC."""
        return self.start_time_us + sample_offsets_us(self.n_samples, self.sample_rate_hz)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SensorBlock):
            return NotImplemented
        return (
            self.header_dict() == other.header_dict()
            and self.units == other.units
            and self.channels.keys() == other.channels.keys()
            and all(
                np.array_equal(np.asarray(v, "<f4"), np.asarray(other.channels[k], "<f4"), equal_nan=True)
                for k, v in self.channels.items()
            )
        )


@dataclass
class WatchRecord(_RecordEvent):
    """One 1 Hz watch record. Absent measurements are None."""

    KIND: ClassVar[str] = "watch_record"

    runner_id: str
    device_id: str
    session_id: str
    seq: int
    timestamp_us: int
    heart_rate_bpm: int | None = None
    speed_m_s: float | None = None
    distance_m: float | None = None
    cadence_spm: float | None = None
    ground_contact_time_ms: float | None = None
    ground_contact_balance_left_pct: float | None = None
    vertical_oscillation_mm: float | None = None
    vertical_ratio_pct: float | None = None
    step_length_mm: float | None = None
    power_w: float | None = None
    altitude_m: float | None = None
    latitude_deg: float | None = None
    longitude_deg: float | None = None
    developer_fields: dict[str, float] = field(default_factory=dict)
    schema_version: int = field(default_factory=lambda: latest_version("watch_record"))


@dataclass
class SessionMarker(_RecordEvent):
    """Start or end of a session; end markers may carry the device's own summary."""

    KIND: ClassVar[str] = "session_marker"

    runner_id: str
    device_id: str
    session_id: str
    seq: int
    timestamp_us: int
    marker: str  # start | end
    source: str  # device | simulator | fit_import
    sport: str = "running"
    sub_sport: str | None = None
    sensors: list[str] = field(default_factory=list)
    total_elapsed_s: float | None = None
    total_distance_m: float | None = None
    avg_heart_rate_bpm: float | None = None
    avg_cadence_spm: float | None = None
    schema_version: int = field(default_factory=lambda: latest_version("session_marker"))


@dataclass
class RunnerProfile(_RecordEvent):
    """Pseudonymous runner profile (compacted topic, latest per runner)."""

    KIND: ClassVar[str] = "runner_profile"

    runner_id: str
    seq: int
    updated_at_us: int
    cohort: str
    sex: str  # female | male | unknown
    birth_year_band: str
    time_zone: str
    resting_hr_bpm: int | None = None
    max_hr_bpm: int | None = None
    device_id: str = "profile-service"
    session_id: str = "-"
    schema_version: int = field(default_factory=lambda: latest_version("runner_profile"))


@dataclass
class DeadLetter(_RecordEvent):
    """A rejected input: the original bytes, where they came from, and why."""

    KIND: ClassVar[str] = "dead_letter"

    reason: str
    detail: str
    stage: str
    original: bytes
    dead_lettered_at_us: int
    runner_id: str | None = None
    device_id: str | None = None
    session_id: str | None = None
    seq: int | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    source_file: str | None = None
    schema_version: int = field(default_factory=lambda: latest_version("dead_letter"))

    @property
    def key(self) -> bytes:
        return (self.runner_id or self.source_file or self.reason).encode()


Event = SensorBlock | WatchRecord | SessionMarker | RunnerProfile | DeadLetter

EVENT_TYPES: dict[str, type] = {
    cls.KIND: cls for cls in (SensorBlock, WatchRecord, SessionMarker, RunnerProfile, DeadLetter)
}
