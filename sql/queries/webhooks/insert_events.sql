-- Store a batch of webhook events; a replay (same dedupe key: wamid + status + timestamp for statuses,
-- message id for inbound messages, wa_id + preference + timestamp for user_preferences, what changed + entry.time
-- for lifecycle webhooks) is ignored.
-- Returns the rows that were new.
-- raw_body: the signed request body on the first event of each request, 'sha256:<hex>' of that body on the
-- request's other events (a 1,000-update webhook is stored once, not 1,000 times); when the first event was
-- a replay, webhooks/attach_body puts the body on the request's first new event.
INSERT INTO webhook_events (dedupe_key, kind, wamid, status, from_phone, event_ts, biz_opaque, payload, raw_body,
                            signature_valid)
SELECT e.dedupe_key, e.kind, e.wamid, e.status, e.from_phone, e.event_ts, e.biz_opaque, CAST(e.payload AS jsonb),
       e.raw_body, true
FROM unnest(CAST(:dedupe_keys AS text[]), CAST(:kinds AS text[]), CAST(:wamids AS text[]),
            CAST(:statuses AS text[]), CAST(:from_phones AS text[]), CAST(:event_ts AS timestamptz[]),
            CAST(:biz_opaques AS text[]), CAST(:payloads AS text[]), CAST(:raw_bodies AS text[]))
     AS e(dedupe_key, kind, wamid, status, from_phone, event_ts, biz_opaque, payload, raw_body)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING event_id, dedupe_key
