-- stg_daily — grain: one row per runner per local date (source: lake/daily).
-- Every daily column passes through; the date key is exposed as local_date (DATE).
SELECT * EXCLUDE ({{ date_key }}), CAST({{ date_key }} AS DATE) AS local_date
FROM {{ source }}
