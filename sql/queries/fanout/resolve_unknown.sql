-- Settle an unresolved row: accepted (a status webhook of this attempt), back to the queue (the webhook
-- watermark proves it was never accepted), or 'unknown' (a stale 'sending' row whose fate is not known yet).
UPDATE deliveries SET
    status = CAST(:status AS text),
    wamid = COALESCE(CAST(:wamid AS text), wamid),
    accepted_at = CASE WHEN CAST(:status AS text) = 'accepted' THEN COALESCE(sending_at, now()) ELSE accepted_at END,
    next_attempt_at = NULL,
    updated_at = now()
WHERE delivery_id = :delivery_id AND status IN ('sending', 'unknown')
