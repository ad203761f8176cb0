-- Rows of a unit whose send outcome is not known: left 'sending' by a crashed sender, or 'unknown'
-- after a timeout. They are reconciled against evidence before anything is resent.
SELECT d.delivery_id, d.idempotency_key, d.advisor_id, d.attempts, d.status, d.sending_at
FROM deliveries d
JOIN delivery_plan p ON p.business_date = d.business_date AND p.advisor_id = d.advisor_id
WHERE d.business_date = :business_date AND p.shard = :shard AND p.segment = ANY(CAST(:segments AS text[]))
  AND ((d.status = 'sending' AND d.sending_at < now() - make_interval(secs => :stale_s)) OR d.status = 'unknown')
