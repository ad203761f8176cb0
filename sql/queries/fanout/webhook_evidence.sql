-- Status webhooks that echo our idempotency keys: proof that those messages were accepted. A webhook of
-- an earlier attempt (its wamid superseded when the row was requeued) proves nothing about this one.
SELECT DISTINCT ON (e.biz_opaque) e.biz_opaque, e.wamid
FROM webhook_events e
JOIN deliveries d ON d.idempotency_key = e.biz_opaque
WHERE e.biz_opaque = ANY(CAST(:keys AS text[])) AND e.kind = 'status' AND e.wamid IS NOT NULL
  AND NOT (e.wamid = ANY(d.superseded_wamids))
ORDER BY e.biz_opaque, e.event_id
