-- strides — grain: one row per stride per foot. Partition key: utc_date (filter on it to prune files).
-- Cohort comes from the runners mart (runners without a profile: cohort NULL).
SELECT s.*, r.cohort
FROM stg_strides AS s
LEFT JOIN runners AS r USING (runner_id)
