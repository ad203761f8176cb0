-- Delivery statuses the webhook receiver stored for canary messages (the production evidence).
SELECT biz_opaque, status, payload
FROM webhook_events
WHERE biz_opaque = ANY(:keys) AND kind = 'status' AND status IN ('delivered', 'read', 'failed')
ORDER BY event_id
