-- The at-most-once guard: a conflicting row (already paged, or being paged by a concurrent task that has not
-- committed yet: this insert waits for it) returns nothing, and the caller does not send.
INSERT INTO incident_pages (incident_id, role, step, sent_at, dedup_key, routing_key, outcome, reason)
VALUES (:incident_id, :role, :step, :sent_at, :dedup_key, :routing_key, :outcome, :reason)
ON CONFLICT (incident_id, role, step) DO NOTHING
RETURNING incident_id
