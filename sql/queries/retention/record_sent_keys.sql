-- What proves a (date, advisor) was dealt with, kept in the transaction that deletes its delivery row:
-- the fan-out's enqueue (fanout/enqueue_from_plan) skips these keys, so an archived date is never
-- queued again. Re-archiving the same key (a crash and rerun) rewrites the same proof.
INSERT INTO sent_keys (business_date, advisor_id, idempotency_key, delivery_id, final_status, wamid, archive_uri)
SELECT business_date, advisor_id, idempotency_key, delivery_id, status, wamid, :uri
FROM deliveries
WHERE delivery_id = ANY(:ids)
ON CONFLICT (business_date, advisor_id) DO UPDATE
SET idempotency_key = EXCLUDED.idempotency_key, delivery_id = EXCLUDED.delivery_id,
    final_status = EXCLUDED.final_status, wamid = EXCLUDED.wamid, archive_uri = EXCLUDED.archive_uri,
    archived_at = now()
