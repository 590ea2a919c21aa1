-- daily — grain: one row per runner per local date (load, ACWR/monotony/strain, spike, compensation).
-- cohort is the runner's cohort as recorded on that day (the daily table carries it; no join needed).
SELECT * FROM stg_daily
