-- The webhook watermark: the latest acceptance time among our messages whose status webhooks the
-- receiver has stored (read over the newest status events). Meta sends a status for every message it
-- accepts, so once statuses are stored for messages accepted well after an unknown send, and none for
-- it, that send was never accepted. NULL when no status has been stored (webhooks late or receiver down).
SELECT max(d.accepted_at) AS watermark
FROM (SELECT wamid FROM webhook_events
      WHERE kind = 'status' AND wamid IS NOT NULL
      ORDER BY event_id DESC LIMIT 5000) e
JOIN deliveries d ON d.wamid = e.wamid
