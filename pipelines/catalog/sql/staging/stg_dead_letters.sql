-- stg_dead_letters — grain: one row per rejected input (source: lake/dead_letters).
SELECT * EXCLUDE (date, original), octet_length(original) AS original_bytes, CAST(date AS DATE) AS dead_lettered_date
FROM {{ source }}
