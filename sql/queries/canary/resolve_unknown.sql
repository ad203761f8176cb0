-- Settle an unresolved canary message: accepted (evidence found) or back to the queue.
UPDATE canary_sends SET
    status = CAST(:status AS text),
    wamid = COALESCE(CAST(:wamid AS text), wamid),
    accepted_at = CASE WHEN CAST(:status AS text) = 'accepted' THEN COALESCE(sending_at, now()) ELSE accepted_at END,
    next_attempt_at = NULL,
    updated_at = now()
WHERE delivery_id = :delivery_id AND status IN ('sending', 'unknown')
