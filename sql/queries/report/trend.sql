-- Daily funnel of the last :days days up to the date (the report's trend chart).
SELECT p.business_date, count(*) AS planned,
       count(d.*) FILTER (WHERE d.status IN ('accepted', 'sent', 'delivered', 'read')) AS accepted,
       count(d.*) FILTER (WHERE d.status IN ('delivered', 'read')) AS delivered,
       count(d.*) FILTER (WHERE d.status = 'read') AS read,
       count(d.*) FILTER (WHERE d.status = 'failed') AS failed,
       count(d.*) FILTER (WHERE d.status = 'skipped') AS skipped
FROM delivery_plan p
LEFT JOIN deliveries d ON d.business_date = p.business_date AND d.advisor_id = p.advisor_id
WHERE p.business_date > CAST(:business_date AS date) - CAST(:days AS int) AND p.business_date <= :business_date
GROUP BY p.business_date ORDER BY p.business_date
