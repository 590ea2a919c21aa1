-- watch_developer_fields — grain: one row per developer field per watch record (FIT developer data: Stryd,
-- RunScribe, ...). field_name and units as the device wrote them ("Form Power", "Watts"); value as a DOUBLE.
-- Example: SELECT runner_id, avg(value) FROM watch_developer_fields WHERE field_name = 'Form Power' GROUP BY 1
WITH entries AS (
    SELECT
        w.runner_id,
        w.device_id,
        w.session_id,
        w.timestamp,
        w.utc_date,
        unnest(map_keys(w.developer_fields)) AS label,
        unnest(map_values(w.developer_fields)) AS value
    FROM stg_watch_records AS w
    WHERE w.developer_fields IS NOT NULL
)
SELECT
    runner_id,
    device_id,
    session_id,
    timestamp,
    utc_date,
    CASE WHEN label LIKE '% [%]' THEN regexp_extract(label, '^(.*) \[[^\]]*\]$', 1) ELSE label END AS field_name,
    CASE WHEN label LIKE '% [%]' THEN regexp_extract(label, '\[([^\]]*)\]$', 1) END AS units,
    value
FROM entries
