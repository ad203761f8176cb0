-- Canary messages accepted by the API and still waiting for a delivered (or failed) status.
SELECT delivery_id, idempotency_key, wamid FROM canary_sends
WHERE canary_run_id = :canary_run_id AND status IN ('accepted', 'sent')
