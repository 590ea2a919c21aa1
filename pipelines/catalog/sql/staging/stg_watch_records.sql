-- stg_watch_records — grain: one row per 1 Hz watch record (source: lake/watch_records).
SELECT * EXCLUDE (date), CAST(date AS DATE) AS utc_date
FROM {{ source }}
