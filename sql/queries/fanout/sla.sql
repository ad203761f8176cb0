-- Final outcome counts of a date against its plan. The 5-minute window opens with the first API
-- attempt of the date; "accepted by the deadline" is what the 99% SLA counts.
WITH window_start AS (
    SELECT min(at) AS started FROM delivery_attempts WHERE business_date = :business_date
)
SELECT (SELECT count(*) FROM delivery_plan WHERE business_date = :business_date) AS planned,
       count(d.*) FILTER (WHERE d.status IN ('accepted', 'sent', 'delivered', 'read')) AS accepted,
       count(d.*) FILTER (WHERE d.status IN ('accepted', 'sent', 'delivered', 'read')
                          AND d.accepted_at <= w.started + make_interval(secs => :window_s)) AS accepted_by_deadline,
       count(d.*) FILTER (WHERE d.status = 'skipped') AS skipped,
       count(d.*) FILTER (WHERE d.status = 'failed') AS failed,
       count(d.*) FILTER (WHERE d.status IN ('queued', 'sending', 'unknown')) AS unresolved,
       count(d.*) AS queued_total,
       max(w.started) AS window_started
FROM window_start w
LEFT JOIN deliveries d ON d.business_date = :business_date
