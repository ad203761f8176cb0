-- Store a batch of webhook events; a replay (same dedupe key: wamid + status + timestamp for statuses,
-- message id for inbound messages) is ignored. Returns the rows that were new.
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
