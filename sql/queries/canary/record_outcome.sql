-- Write one claimed canary message's outcome (same rules as fanout/record_outcome).
UPDATE canary_sends SET
    status = CAST(:status AS text),
    wamid = COALESCE(CAST(:wamid AS text), wamid),
    error_code = CASE WHEN CAST(:status AS text) = 'failed' THEN CAST(:error_code AS integer) ELSE NULL END,
    error_title = CASE WHEN CAST(:status AS text) = 'failed' THEN CAST(:error_title AS text) ELSE NULL END,
    last_error_code = COALESCE(CAST(:error_code AS integer), last_error_code),
    skip_reason = CASE WHEN CAST(:status AS text) = 'skipped' THEN CAST(:skip_reason AS text) ELSE skip_reason END,
    api_latency_ms = COALESCE(CAST(:latency_ms AS integer), api_latency_ms),
    accepted_at = CASE WHEN CAST(:status AS text) = 'accepted' THEN coalesce(CAST(:at AS timestamptz), now())
                       ELSE accepted_at END,
    failed_at = CASE WHEN CAST(:status AS text) = 'failed' THEN coalesce(CAST(:at AS timestamptz), now())
                     ELSE failed_at END,
    next_attempt_at = CAST(:next_attempt_at AS timestamptz),
    attempts = attempts - CAST(:refund_attempt AS int),
    updated_at = now()
WHERE delivery_id = :delivery_id AND status = 'sending'
