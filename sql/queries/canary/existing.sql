-- Earlier canary messages with these keys (same date, phone and render).
SELECT idempotency_key, status, canary_run_id FROM canary_sends WHERE idempotency_key = ANY(:keys)
