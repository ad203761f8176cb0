-- Store a batch of webhook events; a replay (same dedupe key: wamid + status + timestamp for statuses,
-- message id for inbound messages, wa_id + preference + timestamp for user_preferences, what changed + entry.time
-- for lifecycle webhooks) is ignored, also within the batch (the first of two equal keys is stored).
-- Returns the rows that were new.
-- :events is ONE jsonb array of rows, in arrival order:
--   [dedupe_key, kind, wamid, status, from_phone, event_ts (ISO 8601), biz_opaque, payload (the event's JSON),
--    raw_body]
-- so the receiver encodes a batch with one C call instead of adapting nine arrays value by value; the payload
-- arrives as jsonb already (no text round trip).
-- raw_body: the signed request body on the first event of each request, 'sha256:<hex>' of that body on the
-- request's other events (a 1,000-update webhook is stored once, not 1,000 times); when the first event was
-- a replay, webhooks/attach_body puts the body on the request's first new event.
INSERT INTO webhook_events (dedupe_key, kind, wamid, status, from_phone, event_ts, biz_opaque, payload, raw_body,
                            signature_valid)
SELECT e ->> 0, e ->> 1, e ->> 2, e ->> 3, e ->> 4, CAST(e ->> 5 AS timestamptz), e ->> 6, e -> 7, e ->> 8, true
FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS b(e, n)
ORDER BY b.n
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING event_id, dedupe_key
