-- A request whose first event was a replay (already stored) keeps its signed body on its first new event
-- (see webhooks/insert_events): rare, so it is a second statement rather than work on every insert.
UPDATE webhook_events w SET raw_body = b.raw_body
FROM unnest(CAST(:event_ids AS bigint[]), CAST(:raw_bodies AS text[])) AS b(event_id, raw_body)
WHERE w.event_id = b.event_id
