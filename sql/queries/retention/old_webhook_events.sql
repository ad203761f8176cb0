-- The next chunk of webhook events past retention, oldest first, locked for archive-then-delete.
-- Events that are the evidence of a do-not-contact entry are kept.
SELECT * FROM webhook_events e
WHERE e.received_at < CAST(:cutoff AS date)
  AND NOT EXISTS (SELECT 1 FROM do_not_contact d WHERE d.source_event_id = e.event_id)
ORDER BY e.event_id
LIMIT :limit
FOR UPDATE
