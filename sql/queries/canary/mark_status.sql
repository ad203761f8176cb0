-- Record delivery evidence for a canary message; a status never moves backwards.
UPDATE canary_sends SET
    status = CAST(:status AS text),
    delivered_at = CASE WHEN CAST(:status AS text) IN ('delivered', 'read') THEN coalesce(delivered_at, now())
                        ELSE delivered_at END,
    failed_at = CASE WHEN CAST(:status AS text) = 'failed' THEN now() ELSE failed_at END,
    error_code = CASE WHEN CAST(:status AS text) = 'failed' THEN CAST(:error_code AS integer) ELSE error_code END,
    error_title = CASE WHEN CAST(:status AS text) = 'failed' THEN CAST(:error_title AS text) ELSE error_title END,
    updated_at = now()
WHERE delivery_id = :delivery_id AND status IN ('accepted', 'sent')
