-- The templates a canary run's shard sends (see fanout/unit_templates).
SELECT DISTINCT template_name, template_language
FROM canary_sends
WHERE canary_run_id = :canary_run_id AND shard = :shard
