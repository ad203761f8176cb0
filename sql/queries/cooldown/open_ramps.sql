-- Open ramps (cooldown or volume ramp) with their number's current state.
SELECT r.*, n.display_phone, n.role, n.shard AS number_shard, n.active, n.quality_rating, n.status,
       n.throughput_mps
FROM number_ramps r
JOIN sending_numbers n ON n.phone_number_id = r.phone_number_id
WHERE r.ended_at IS NULL
ORDER BY r.phone_number_id
