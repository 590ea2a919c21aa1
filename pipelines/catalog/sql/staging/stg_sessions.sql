-- stg_sessions — grain: one row per session marker (start or end) per device (source: lake/sessions).
SELECT * EXCLUDE (date), CAST(date AS DATE) AS utc_date
FROM {{ source }}
