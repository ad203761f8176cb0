SELECT to_phone, segment, shard, status, error_code, error_title, skip_reason, template_name, wamid
FROM canary_sends WHERE canary_run_id = :canary_run_id ORDER BY delivery_id
