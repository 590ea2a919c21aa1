"""Arrow schema of the ``daily`` table (written by the daily Beam job, ``pipelines/daily``).

Grain: **one row per runner per local date** (the calendar date in the runner's time zone at the
start of each session). Rest days are rows too (zero load), because rolling measures need them.
Partitioned by ``date`` (= the local date). Formulas: ``docs/load.md`` and ``docs/compensation.md``.

Units are in the names. Load columns are 0 on rest days and NULL when the day had sessions but the
measure could not be computed (e.g. no heart rate). Every compensation component ``c`` has:

- ``c_raw``: the measured value (higher = more compensation; unit in docs/compensation.md),
- ``c_points``: its contribution 0-100 to the score,
- ``c_computable``: whether the sensors/data needed were there (False => every other c_* NULL),
- ``c_sensors``: which sensors covered it (comma-separated: emg, pelvis_imu, foot_imu, watch),
- ``c_pop_z``: z-score against the documented population reference,
- ``c_baseline_z`` and ``c_vs_baseline_pct``: against the runner's own previous 28 days.
"""

from __future__ import annotations

import pyarrow as pa

DAILY_SCHEMA_VERSION = 1

#: compensation components, in display order (must match pipelines.science.compensation.COMPONENTS)
COMPONENT_NAMES = (
    "glute_deficit",
    "calf_dominance",
    "hamstring_dominance",
    "recruitment_inversion",
    "pelvic_drop",
    "asymmetry",
    "overstride",
    "fatigue_drift",
)

_f64 = pa.float64()

_BASE = [
    pa.field("runner_id", pa.string(), nullable=False),
    pa.field("cohort", pa.string()),
    pa.field("sex", pa.string()),
    pa.field("time_zone", pa.string(), nullable=False),
    pa.field("rest_day", pa.bool_(), nullable=False),
    pa.field("sessions", pa.int32(), nullable=False),
    pa.field("duration_s", _f64, nullable=False),
    pa.field("distance_m", _f64),  # NULL when a session had no distance
    pa.field("strides", pa.int64()),  # stride cycles = steps / 2
    pa.field("steps", pa.int64()),
    pa.field("steps_source", pa.string()),  # strides | watch_cadence
    pa.field("longest_run_m", _f64),
    pa.field("longest_run_prev30d_m", _f64),
    pa.field("spike_ratio", _f64),  # longest_run_m / longest_run_prev30d_m
    pa.field("spike_flag", pa.bool_()),  # ratio > 1.10 (Frandsen 2025); NULL when undefined
    pa.field("hr_coverage", _f64),  # fraction of session time with heart rate
    pa.field("hr_rest_bpm_used", _f64),
    pa.field("hr_max_bpm_used", _f64),
    pa.field("hr_params_source", pa.string()),  # profile | estimated | mixed
    pa.field("trimp_banister", _f64),  # a.u.
    pa.field("trimp_edwards", _f64),  # a.u.
    pa.field("impact_load_g", _f64),  # sum of per-stride peak impact, in g (g-strides)
    pa.field("acute_load_trimp", _f64),  # EWMA N=7 of trimp_banister
    pa.field("chronic_load_trimp", _f64),  # EWMA N=28
    pa.field("acwr", _f64),  # acute / chronic (contested)
    pa.field("weekly_load_trimp", _f64),  # sum over 7 days
    pa.field("monotony_7d", _f64),  # mean / sd over 7 days (Foster)
    pa.field("strain_7d", _f64),  # weekly load x monotony
    pa.field("cadence_spm", _f64),
    pa.field("glute_share_median", _f64),  # glute / (glute + hamstring + calf), explanatory
    pa.field("asymmetry_gct_si_pct", _f64),
    pa.field("asymmetry_glute_si_pct", _f64),
    pa.field("fatigue_glute_drop_pct", _f64),
]

_COMPONENT_FIELDS = [
    f
    for c in COMPONENT_NAMES
    for f in (
        pa.field(f"{c}_raw", _f64),
        pa.field(f"{c}_points", _f64),
        pa.field(f"{c}_computable", pa.bool_(), nullable=False),
        pa.field(f"{c}_sensors", pa.string()),
        pa.field(f"{c}_pop_z", _f64),
        pa.field(f"{c}_baseline_z", _f64),
        pa.field(f"{c}_vs_baseline_pct", _f64),
    )
]

_TAIL = [
    pa.field("compensation_score", _f64),  # 0-100, NULL when no component was computable
    pa.field("compensation_components_available", pa.int32(), nullable=False),
    pa.field("compensation_sensors", pa.string()),
    pa.field("schema_version", pa.int32(), nullable=False),
    pa.field("date", pa.date32(), nullable=False),  # local date (partition key)
]

#: grain: one row per runner per local date (runner's time zone), rest days included
DAILY = pa.schema(_BASE + _COMPONENT_FIELDS + _TAIL)

#: sort order inside each date partition
DAILY_SORT = ("runner_id",)
