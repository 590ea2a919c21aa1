-- injury_risk — grain: one row per runner per report date. level_rank orders low < elevated < high.
SELECT
    *,
    CASE risk_level WHEN 'high' THEN 2 WHEN 'elevated' THEN 1 ELSE 0 END AS level_rank
FROM stg_injury_risk
