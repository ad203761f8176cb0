-- A shard's current primary number, with the state the webhook receiver (phone_number_quality_update) and the
-- 05:50 refresh keep current.
SELECT phone_number_id, display_phone, throughput_mps, quality_rating, status, messaging_tier
FROM sending_numbers WHERE shard = :shard AND role = 'primary' AND active
