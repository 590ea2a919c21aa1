-- cohorts — grain: one row per cohort. Size from runners; risk counts from the latest report date.
WITH latest AS (
    SELECT max(report_date) AS report_date FROM injury_risk
),
risk AS (
    SELECT
        cohort,
        count(*) AS scored_runners,
        count(*) FILTER (WHERE risk_level = 'elevated') AS elevated,
        count(*) FILTER (WHERE risk_level = 'high') AS high,
        median(risk_score) AS median_risk_score
    FROM injury_risk
    WHERE report_date = (SELECT report_date FROM latest)
    GROUP BY cohort
)
SELECT
    r.cohort,
    count(*) AS runners,
    count(*) FILTER (WHERE r.age_40_plus) AS runners_40_plus,
    (SELECT report_date FROM latest) AS latest_report_date,
    coalesce(any_value(k.scored_runners), 0) AS scored_runners,
    coalesce(any_value(k.elevated), 0) AS elevated,
    coalesce(any_value(k.high), 0) AS high,
    any_value(k.median_risk_score) AS median_risk_score
FROM runners AS r
LEFT JOIN risk AS k USING (cohort)
GROUP BY r.cohort
