SELECT phone_number_id, shard, segment, count(*) AS rows, min(jitter_ms) AS min_jitter_ms,
       max(jitter_ms) AS max_jitter_ms
FROM delivery_plan
WHERE business_date = :business_date
GROUP BY phone_number_id, shard, segment
ORDER BY shard, segment
