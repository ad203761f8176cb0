-- A date's rows whose send outcome is not known: 'unknown', or 'sending' for longer than any live request
-- (the sender holding them is gone). For the post-delivery settle step (include/delivery/unknown_outcomes.py).
SELECT d.delivery_id, d.idempotency_key, d.status, d.sending_at
FROM deliveries d
WHERE d.business_date = :business_date
  AND (d.status = 'unknown' OR (d.status = 'sending' AND d.sending_at < now() - make_interval(secs => :stale_s)))
