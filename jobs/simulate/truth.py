"""Ground truth of a simulation, written incrementally as Parquet under ``paths.truth``.

Files (zstd; times are ``timestamp[us, UTC]`` on the TRUE clock unless the name says ``device``):

* ``runners.parquet`` — one row per runner: every latent trait (:class:`RunnerTraits`).
* ``sessions.parquet`` — one row per session: plan, spike flag, battery event, device-reality counts.
* ``devices.parquet`` — one row per session per device: clock offset, seq range, drops/dups/swaps, death.
* ``strides.parquet`` — one row per stride per foot (IC -> next IC of the same foot), one row group per
  session: true IC/TC, the foot device's clock offset and the device-clock IC/TC, temporal features,
  pelvic drop and EMG truth.

Files are written to ``*.parquet.tmp`` and renamed on :meth:`TruthWriter.close`, so a crashed run never
leaves a half file under the final name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["DEVICES", "SESSIONS", "STRIDES", "TruthWriter"]

TS = pa.timestamp("us", tz="UTC")

STRIDES = pa.schema(
    [
        ("runner_id", pa.string()),
        ("session_id", pa.string()),
        ("foot", pa.string()),
        ("stride_index", pa.int32()),
        ("ic_time", TS),  # true clock
        ("tc_time", TS),  # toe-off inside the stride (true clock)
        ("next_ic_time", TS),
        ("device_id", pa.string()),  # foot IMU (null when the runner wears none)
        ("device_offset_us", pa.int64()),  # device clock - true clock
        ("ic_device_time_us", pa.int64()),  # ic_time + offset, what the device stamps
        ("tc_device_time_us", pa.int64()),
        ("recorded", pa.bool_()),  # inside the foot IMU's recorded stream (before a battery death)
        ("session_elapsed_s", pa.float64()),
        ("stride_time_s", pa.float64()),
        ("cadence_spm", pa.float64()),
        ("ground_contact_time_ms", pa.float64()),
        ("swing_time_ms", pa.float64()),
        ("foot_strike_angle_deg", pa.float64()),
        ("push_off_peak_deg_s", pa.float64()),
        ("swing_min_deg_s", pa.float64()),
        ("impact_amplitude_m_s2", pa.float64()),
        ("pelvic_drop_deg", pa.float64()),  # contralateral drop in this foot's stance
        ("vertical_oscillation_mm", pa.float64()),
        ("gluteus_maximus_peak_uv", pa.float64()),
        ("gluteus_medius_peak_uv", pa.float64()),
        ("hamstrings_peak_uv", pa.float64()),
        ("gastrocnemius_peak_uv", pa.float64()),
        ("vastus_lateralis_peak_uv", pa.float64()),
        ("glute_share", pa.float64()),  # gmax burst integral / (gmax + hamstrings + gastrocnemius)
        ("glute_onset_ms", pa.float64()),  # relative to IC (negative = before IC)
        ("hamstring_onset_ms", pa.float64()),
        ("recruitment_inverted", pa.bool_()),  # glute onset after hamstring onset
        ("fatigue", pa.float64()),  # 0..1
    ]
)

SESSIONS = pa.schema(
    [
        ("runner_id", pa.string()),
        ("session_id", pa.string()),
        ("kind", pa.string()),
        ("local_date", pa.date32()),
        ("time_zone", pa.string()),
        ("start_time", TS),
        ("end_time", TS),
        ("duration_s", pa.int32()),
        ("distance_m", pa.float64()),
        ("mean_speed_m_s", pa.float64()),
        ("spike", pa.bool_()),
        ("longest_prev_30d_m", pa.float64()),
        ("kit", pa.string()),
        ("sensors", pa.string()),
        ("battery", pa.string()),  # null | sensor | watch
        ("battery_device", pa.string()),
        ("battery_at_s", pa.float64()),
        ("strides_left", pa.int32()),
        ("strides_right", pa.int32()),
        ("mean_cadence_spm", pa.float64()),
        ("mean_heart_rate_bpm", pa.float64()),
        ("max_fatigue", pa.float64()),
        ("messages", pa.int64()),  # events emitted incl. duplicates and markers
        ("dropped", pa.int64()),
        ("duplicated", pa.int64()),
        ("out_of_order", pa.int64()),
    ]
)

DEVICES = pa.schema(
    [
        ("runner_id", pa.string()),
        ("session_id", pa.string()),
        ("device_id", pa.string()),
        ("sensor", pa.string()),
        ("side", pa.string()),
        ("sample_rate_hz", pa.float64()),
        ("clock_offset_us", pa.int64()),
        ("first_seq", pa.int64()),
        ("last_seq", pa.int64()),
        ("blocks", pa.int64()),  # data messages numbered (sent or dropped)
        ("dropped", pa.int64()),
        ("duplicated", pa.int64()),
        ("out_of_order", pa.int64()),
        ("died_at_s", pa.float64()),
        ("start_marker", pa.bool_()),
        ("end_marker", pa.bool_()),
    ]
)


class TruthWriter:
    """Incremental writer of the truth tables (one row group per session for strides)."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._strides = pq.ParquetWriter(self._tmp("strides"), STRIDES, compression="zstd")
        self._sessions: list[dict] = []
        self._devices: list[dict] = []
        self._closed = False

    def _tmp(self, name: str) -> Path:
        return self.dir / f"{name}.parquet.tmp"

    def write_runners(self, rows: list[dict]) -> None:
        pq.write_table(pa.Table.from_pylist(rows), self._tmp("runners"), compression="zstd")

    def write_strides(self, columns: dict[str, np.ndarray | list]) -> None:
        table = pa.Table.from_pydict(columns, schema=STRIDES)
        if table.num_rows:
            self._strides.write_table(table)

    def add_session(self, row: dict) -> None:
        self._sessions.append(row)

    def add_devices(self, rows: list[dict]) -> None:
        self._devices.extend(rows)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._strides.close()
        pq.write_table(pa.Table.from_pylist(self._sessions, schema=SESSIONS), self._tmp("sessions"))
        pq.write_table(pa.Table.from_pylist(self._devices, schema=DEVICES), self._tmp("devices"))
        for name in ("runners", "sessions", "devices", "strides"):
            tmp = self._tmp(name)
            if tmp.exists():
                tmp.replace(self.dir / f"{name}.parquet")

    def __enter__(self) -> TruthWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
