-- Work left for a unit: rows still queued or unresolved.
SELECT count(*) FILTER (WHERE d.status = 'queued') AS queued,
       count(*) FILTER (WHERE d.status IN ('sending', 'unknown')) AS unresolved,
       min(d.next_attempt_at) FILTER (WHERE d.status = 'queued') AS next_retry_at
FROM deliveries d
JOIN delivery_plan p ON p.business_date = d.business_date AND p.advisor_id = d.advisor_id
WHERE d.business_date = :business_date AND p.shard = :shard AND p.segment = ANY(CAST(:segments AS text[]))
  AND d.status IN ('queued', 'sending', 'unknown')
