-- stg_injury_risk — grain: one row per runner per report date (source: lake/injury_risk).
SELECT * EXCLUDE (date), CAST(date AS DATE) AS report_date
FROM {{ source }}
