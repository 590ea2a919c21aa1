-- stg_runners — grain: one row per runner profile version (source: lake/runners).
SELECT
    runner_id,
    cohort,
    sex,
    birth_year_band,
    TRY_CAST(regexp_extract(birth_year_band, '(\d{4})', 1) AS INTEGER) AS birth_year_from,
    time_zone,
    resting_hr_bpm,
    max_hr_bpm,
    updated_at,
    profile_seq
FROM {{ source }}
