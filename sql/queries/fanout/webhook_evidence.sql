-- Status webhooks that echo our idempotency keys: proof that those messages were accepted.
SELECT DISTINCT ON (biz_opaque) biz_opaque, wamid
FROM webhook_events
WHERE biz_opaque = ANY(:keys) AND kind = 'status' AND wamid IS NOT NULL
ORDER BY biz_opaque, event_id
