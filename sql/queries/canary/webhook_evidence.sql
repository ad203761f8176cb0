-- Status webhooks that echo canary idempotency keys (see fanout/webhook_evidence).
SELECT DISTINCT ON (biz_opaque) biz_opaque, wamid
FROM webhook_events
WHERE biz_opaque = ANY(CAST(:keys AS text[])) AND kind = 'status' AND wamid IS NOT NULL
ORDER BY biz_opaque, event_id
