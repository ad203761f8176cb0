-- The webhook watermark over canary messages and deliveries alike (see fanout/webhook_watermark).
SELECT max(accepted_at) AS watermark FROM (
    SELECT d.accepted_at
    FROM (SELECT wamid FROM webhook_events
          WHERE kind = 'status' AND wamid IS NOT NULL
          ORDER BY event_id DESC LIMIT 5000) e
    JOIN deliveries d ON d.wamid = e.wamid
    UNION ALL
    SELECT c.accepted_at
    FROM (SELECT wamid FROM webhook_events
          WHERE kind = 'status' AND wamid IS NOT NULL
          ORDER BY event_id DESC LIMIT 5000) e
    JOIN canary_sends c ON c.wamid = e.wamid
) w
