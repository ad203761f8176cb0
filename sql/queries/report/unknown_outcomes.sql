-- Sends of the date whose outcome is still unknown after the settle step (no status webhook, and the
-- webhook watermark does not prove them unsent): never resent automatically; listed for an operator.
SELECT d.delivery_id, d.advisor_id, d.phone_number_id, d.status, d.sending_at, d.attempts,
       round(extract(epoch FROM now() - d.sending_at) / 60) AS minutes_unknown
FROM deliveries d
WHERE d.business_date = :business_date
  AND (d.status = 'unknown' OR (d.status = 'sending' AND d.sending_at < now() - make_interval(secs => :stale_s)))
ORDER BY d.sending_at
