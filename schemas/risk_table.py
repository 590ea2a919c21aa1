"""Arrow schema of the ``injury_risk`` lake table (written by the nightly job).

Grain: **one row per runner per report date**. Layout: ``<lake>/injury_risk/date=YYYY-MM-DD/part-0.parquet``
(the partition column ``date`` is the report date and is not stored in the files).

Every score is explainable: each driver's points are stored in a ``points_<driver>`` column and the
full driver list (value, baseline, change, evidence grade, likely sites, plain-language reason) in
``drivers``. Version bumps of the scoring model change ``model_version``.
"""

from __future__ import annotations

import pyarrow as pa

#: the scoring model version written into every row (bump when pipelines.science.risk changes meaning)
RISK_MODEL_VERSION = "risk-1.1"

#: driver keys, in the order of the ``points_*`` columns (kept in sync with pipelines.science.risk.DRIVERS)
DRIVER_KEYS: tuple[str, ...] = (
    "distance_spike",
    "pelvic_drop",
    "overstride",
    "impact_loading",
    "low_step_rate",
    "glute_deficit",
    "calf_dominance",
    "hamstring_dominance",
    "lumbar_compensation",
    "asymmetry",
    "fatigue_drift",
    "recruitment_inversion",
    "compensation_score",
    "acwr",
)

DRIVER = pa.struct(
    [
        pa.field("driver", pa.string()),  # key, e.g. calf_dominance
        pa.field("label", pa.string()),  # human label, e.g. "calf compensation"
        pa.field("grade", pa.string()),  # strong | moderate | weak | contested
        pa.field("points", pa.float64()),  # contribution to risk_score (before the 0-100 clip)
        pa.field("value", pa.float64()),  # recent value (unit below)
        pa.field("baseline", pa.float64()),  # the runner's own 4-week baseline (or the reference)
        pa.field("change_pct", pa.float64()),  # (value / baseline - 1) * 100
        pa.field("unit", pa.string()),
        pa.field("sites", pa.list_(pa.string())),  # likely injury sites this driver points to
        pa.field("reason", pa.string()),  # plain-language sentence for the coach
    ]
)

#: why a driver could not be computed for a runner (pipelines.science.risk.explain_not_computable):
#: kind = no_sensor | no_recent_run | history | baseline_zero | no_long_run | too_few_strides | data_quality;
#: ready_on = the first report date with enough baseline (history only; null when more data is needed)
WHY = pa.struct(
    [
        pa.field("driver", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("ready_on", pa.date32()),
    ]
)

#: grain: one row per runner per report date
INJURY_RISK = pa.schema(
    [
        pa.field("runner_id", pa.string(), nullable=False),
        pa.field("cohort", pa.string(), nullable=False),
        pa.field("risk_score", pa.float64(), nullable=False),  # 0..100
        pa.field("risk_level", pa.string(), nullable=False),  # low | elevated | high
        pa.field("score_without_acwr", pa.float64(), nullable=False),  # the level is decided on this
        pa.field("top_driver", pa.string()),  # key of the largest driver, null when none
        pa.field("top_driver_grade", pa.string()),
        pa.field("n_drivers", pa.int32(), nullable=False),  # drivers with points > 0
        pa.field("drivers", pa.list_(DRIVER)),  # drivers with points > 0, largest first
        pa.field("likely_sites", pa.list_(pa.string())),  # ranked by the points pointing at them
        pa.field("reasons", pa.string()),  # the top reasons joined with "; "
        pa.field("not_computable", pa.list_(pa.string())),  # driver keys that lacked data / sensors
        pa.field("not_computable_why", pa.list_(WHY)),  # per such driver: its true reason (same order)
        pa.field("last_run_date", pa.date32()),  # latest local date with a run (<= report date)
        pa.field("days_with_runs_28d", pa.int32(), nullable=False),
        pa.field(
            "spike_ratio", pa.float64()
        ),  # max over the last 7 days of longest run / prev-30-day longest
        pa.field("spike_days_ago", pa.int32()),  # days since that run
        pa.field("longest_run_m", pa.float64()),  # the spiking run (or today's longest)
        pa.field("prev30_longest_run_m", pa.float64()),
        pa.field("acwr", pa.float64()),  # contested: reported, never a verdict
        pa.field("compensation_score", pa.float64()),  # 0..100, latest, from daily
        *[pa.field(f"points_{k}", pa.float64(), nullable=False) for k in DRIVER_KEYS],
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),  # report date (partition key)
    ]
)

GRAIN = "one row per runner per report date"
