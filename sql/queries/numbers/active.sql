SELECT phone_number_id, display_phone, shard, role, quality_rating, status, throughput_mps, messaging_tier, active
FROM sending_numbers
WHERE active
ORDER BY role, shard NULLS LAST, phone_number_id
