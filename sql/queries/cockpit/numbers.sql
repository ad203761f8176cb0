-- Every sending number: quality, tier, status and its throughput limit.
SELECT phone_number_id, display_phone, shard, role, quality_rating, status, messaging_tier, throughput_mps,
       active, retired_reason, quality_changed_at, last_checked_at
FROM sending_numbers
ORDER BY active DESC, shard NULLS LAST, role, phone_number_id
