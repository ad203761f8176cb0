-- Per segment of a date's plan: planned rows, accepted (accepted/sent/delivered/read), unsent (no delivery row yet,
-- or queued/sending/unknown: still on its way) and the final non-accepted outcomes (failed, skipped: DNC/opt-out).
SELECT p.segment,
       count(*) AS planned,
       count(*) FILTER (WHERE d.status IN ('accepted', 'sent', 'delivered', 'read')) AS accepted,
       count(*) FILTER (WHERE d.status IS NULL OR d.status IN ('queued', 'sending', 'unknown')) AS unsent,
       count(*) FILTER (WHERE d.status = 'failed') AS failed,
       count(*) FILTER (WHERE d.status = 'skipped') AS skipped
FROM delivery_plan p
LEFT JOIN deliveries d ON d.business_date = p.business_date AND d.advisor_id = p.advisor_id
WHERE p.business_date = :business_date
GROUP BY p.segment
ORDER BY p.segment
