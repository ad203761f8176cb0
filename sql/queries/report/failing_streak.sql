-- Advisors whose message failed on each of the last :days business dates up to this one.
SELECT d.advisor_id, a.external_ref, a.segment, array_agg(DISTINCT d.error_code) AS error_codes
FROM deliveries d
JOIN advisors a ON a.advisor_id = d.advisor_id
WHERE d.business_date > CAST(:business_date AS date) - CAST(:days AS int) AND d.business_date <= :business_date
  AND d.status = 'failed'
GROUP BY d.advisor_id, a.external_ref, a.segment
HAVING count(DISTINCT d.business_date) >= CAST(:days AS int)
ORDER BY d.advisor_id
