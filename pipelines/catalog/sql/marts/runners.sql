-- runners — grain: one row per runner (latest profile). Pseudonymous: no names or contact data.
-- age_band_40_plus: true when the birth-year band starts 40+ years before the current year.
SELECT
    runner_id,
    cohort,
    sex,
    birth_year_band,
    birth_year_from,
    (year(current_date) - birth_year_from) >= 40 AS age_40_plus,
    time_zone,
    resting_hr_bpm,
    max_hr_bpm,
    updated_at,
    profile_seq
FROM stg_runners
QUALIFY row_number() OVER (PARTITION BY runner_id ORDER BY profile_seq DESC, updated_at DESC) = 1
