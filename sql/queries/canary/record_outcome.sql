-- Write a batch of claimed canary messages' outcomes (same rules as fanout/record_outcome).
UPDATE canary_sends d SET
    status = o.status,
    wamid = COALESCE(o.wamid, d.wamid),
    error_code = CASE WHEN o.status = 'failed' THEN o.error_code ELSE NULL END,
    error_title = CASE WHEN o.status = 'failed' THEN o.error_title ELSE NULL END,
    last_error_code = COALESCE(o.error_code, d.last_error_code),
    skip_reason = CASE WHEN o.status = 'skipped' THEN o.skip_reason ELSE d.skip_reason END,
    api_latency_ms = COALESCE(o.latency_ms, d.api_latency_ms),
    accepted_at = CASE WHEN o.status = 'accepted' THEN coalesce(o.at, now()) ELSE d.accepted_at END,
    failed_at = CASE WHEN o.status = 'failed' THEN coalesce(o.at, now()) ELSE d.failed_at END,
    next_attempt_at = o.next_attempt_at,
    attempts = d.attempts - o.refund_attempt,
    updated_at = now()
FROM unnest(CAST(:delivery_id AS bigint[]), CAST(:status AS text[]), CAST(:wamid AS text[]),
            CAST(:error_code AS integer[]), CAST(:error_title AS text[]), CAST(:skip_reason AS text[]),
            CAST(:latency_ms AS integer[]), CAST(:next_attempt_at AS timestamptz[]),
            CAST(:refund_attempt AS integer[]), CAST(:at AS timestamptz[]))
     AS o(delivery_id, status, wamid, error_code, error_title, skip_reason, latency_ms, next_attempt_at,
          refund_attempt, at)
WHERE d.delivery_id = o.delivery_id AND d.status = 'sending'
