SELECT DISTINCT shard FROM canary_sends WHERE canary_run_id = :canary_run_id ORDER BY shard
