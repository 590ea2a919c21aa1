-- daily — grain: one row per runner per local date (load, ACWR/monotony/strain, spike, compensation).
SELECT d.* EXCLUDE (cohort), coalesce(r.cohort, d.cohort) AS cohort
FROM stg_daily AS d
LEFT JOIN runners AS r USING (runner_id)
