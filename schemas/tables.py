"""Arrow schemas of the lake tables, each with its grain. Timestamps are UTC microseconds.

Each job that writes a table takes its schema from here, so readers (DuckDB views, Great
Expectations suites, the next job) see one contract. Tables owned by later jobs (daily,
injury_risk) register their schema in their own module under ``schemas/``.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

#: grain: one row per stride per foot (initial contact to the next initial contact of the same foot)
STRIDES = pa.schema(
    [
        pa.field("runner_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("foot", pa.string(), nullable=False),  # left | right
        pa.field("stride_id", pa.string(), nullable=False),  # f"{session_id}:{foot}:{ic_time_us}"
        pa.field("ic_time", TS, nullable=False),  # initial contact, corrected device time
        pa.field("tc_time", TS),  # toe-off (final contact)
        pa.field("next_ic_time", TS, nullable=False),
        pa.field("session_elapsed_s", pa.float64()),  # ic_time - session start
        pa.field("stride_time_s", pa.float64()),
        pa.field("cadence_spm", pa.float64()),  # steps/min = 120 / stride_time_s
        pa.field("ground_contact_time_ms", pa.float64()),
        pa.field("swing_time_ms", pa.float64()),
        pa.field(
            "flight_time_ms", pa.float64()
        ),  # this foot's TC to the other foot's IC; null without both feet
        pa.field("duty_factor", pa.float64()),  # contact / stride time
        pa.field("peak_impact_m_s2", pa.float64()),
        pa.field("foot_strike_angle_deg", pa.float64()),  # + = heel strike; overstride proxy
        pa.field("vertical_oscillation_mm", pa.float64()),  # pelvis IMU; null without it
        pa.field("pelvic_drop_deg", pa.float64()),  # contralateral pelvic drop in this foot's stance
        pa.field(
            "glute_max_act_norm", pa.float64()
        ),  # EMG mean envelope / runner reference (1.0 = reference)
        pa.field("glute_med_act_norm", pa.float64()),
        pa.field("hamstrings_act_norm", pa.float64()),
        pa.field("gastrocnemius_act_norm", pa.float64()),
        pa.field("vastus_lateralis_act_norm", pa.float64()),
        pa.field("glute_share", pa.float64()),  # glute / (glute + hamstring + calf), 0..1
        pa.field("hamstring_share", pa.float64()),  # hamstring / (glute + hamstring + calf), 0..1
        pa.field("calf_share", pa.float64()),  # gastrocnemius / (glute + hamstring + calf), 0..1
        pa.field("glute_onset_ms", pa.float64()),  # onset relative to IC (negative = before IC)
        pa.field("hamstring_onset_ms", pa.float64()),
        pa.field("recruitment_inverted", pa.bool_()),  # hamstrings fired before gluteus maximus
        pa.field("sensors", pa.string()),  # e.g. "foot_imu,pelvis_imu,emg"
        pa.field("quality_ok", pa.bool_(), nullable=False),
        pa.field("quality_reason", pa.string()),
        pa.field("date", pa.date32(), nullable=False),  # UTC date of ic_time (partition key)
    ]
)

#: grain: one row per 1 Hz watch record (runner, device, timestamp)
WATCH_RECORDS = pa.schema(
    [
        pa.field("runner_id", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("timestamp", TS, nullable=False),
        pa.field("heart_rate_bpm", pa.int32()),
        pa.field("speed_m_s", pa.float64()),
        pa.field("distance_m", pa.float64()),
        pa.field("cadence_spm", pa.float64()),
        pa.field("ground_contact_time_ms", pa.float64()),
        pa.field("ground_contact_balance_left_pct", pa.float64()),
        pa.field("vertical_oscillation_mm", pa.float64()),
        pa.field("vertical_ratio_pct", pa.float64()),
        pa.field("step_length_mm", pa.float64()),
        pa.field("power_w", pa.float64()),
        pa.field("altitude_m", pa.float64()),
        # FIT developer fields (Stryd, RunScribe, ...) as the device named them, units in brackets:
        # {"Form Power [Watts]": 105.0, "Leg Spring Stiffness [KN/m]": 9.1}; null when the record had none
        pa.field("developer_fields", pa.map_(pa.string(), pa.float64())),
        pa.field("date", pa.date32(), nullable=False),  # UTC date (partition key)
    ]
)

#: grain: one row per session marker (start or end) per device
SESSIONS = pa.schema(
    [
        pa.field("runner_id", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("timestamp", TS, nullable=False),
        pa.field("marker", pa.string(), nullable=False),  # start | end
        pa.field("source", pa.string(), nullable=False),
        pa.field("sport", pa.string()),
        pa.field("sub_sport", pa.string()),
        pa.field("sensors", pa.string()),
        pa.field("total_elapsed_s", pa.float64()),
        pa.field("total_distance_m", pa.float64()),
        pa.field("avg_heart_rate_bpm", pa.float64()),
        pa.field("avg_cadence_spm", pa.float64()),
        pa.field("date", pa.date32(), nullable=False),
    ]
)

#: grain: one row per runner (latest profile); pseudonymous, no names or contact data
RUNNERS = pa.schema(
    [
        pa.field("runner_id", pa.string(), nullable=False),
        pa.field("cohort", pa.string(), nullable=False),
        pa.field("sex", pa.string(), nullable=False),
        pa.field("birth_year_band", pa.string()),
        pa.field("time_zone", pa.string(), nullable=False),
        pa.field("resting_hr_bpm", pa.int32()),
        pa.field("max_hr_bpm", pa.int32()),
        pa.field("updated_at", TS, nullable=False),
        pa.field("profile_seq", pa.int64(), nullable=False),
    ]
)

#: grain: one row per rejected input
DEAD_LETTERS = pa.schema(
    [
        pa.field(
            "dead_letter_id", pa.string(), nullable=False
        ),  # deterministic: source coordinates or content hash
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("runner_id", pa.string()),
        pa.field("device_id", pa.string()),
        pa.field("session_id", pa.string()),
        pa.field("seq", pa.int64()),
        pa.field("source_topic", pa.string()),
        pa.field("source_partition", pa.int32()),
        pa.field("source_offset", pa.int64()),
        pa.field("source_file", pa.string()),
        pa.field("original", pa.binary()),
        pa.field("dead_lettered_at", TS, nullable=False),
        pa.field("date", pa.date32(), nullable=False),  # UTC date dead-lettered (partition key)
    ]
)

TABLES: dict[str, pa.Schema] = {
    "strides": STRIDES,
    "watch_records": WATCH_RECORDS,
    "sessions": SESSIONS,
    "runners": RUNNERS,
    "dead_letters": DEAD_LETTERS,
}
