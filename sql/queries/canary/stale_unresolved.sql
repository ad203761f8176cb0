-- Canary messages whose send outcome is not known (see fanout/stale_unresolved).
SELECT delivery_id, idempotency_key, sample_advisor_id AS advisor_id, attempts, status, sending_at
FROM canary_sends
WHERE canary_run_id = :canary_run_id AND shard = :shard
  AND ((status = 'sending' AND sending_at < now() - make_interval(secs => :stale_s)) OR status = 'unknown')
