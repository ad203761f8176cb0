-- What retention/old_webhook_events would archive (dry run): same rows, counted, nothing locked.
SELECT count(*) AS n, min(e.event_id) AS first_id, max(e.event_id) AS last_id,
       min(e.received_at)::date AS oldest, max(e.received_at)::date AS newest
FROM webhook_events e
WHERE e.received_at < CAST(:cutoff AS date)
  AND NOT EXISTS (SELECT 1 FROM do_not_contact d WHERE d.source_event_id = e.event_id)
