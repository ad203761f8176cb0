-- Canary messages of a run and shard still queued or unresolved.
SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status IN ('sending', 'unknown')) AS unresolved,
       min(next_attempt_at) FILTER (WHERE status = 'queued') AS next_retry_at
FROM canary_sends
WHERE canary_run_id = :canary_run_id AND shard = :shard AND status IN ('queued', 'sending', 'unknown')
