-- Open ramps locked for an evaluation or an override (one writer at a time).
SELECT r.*, n.display_phone, n.role, n.shard AS number_shard, n.active, n.quality_rating, n.status
FROM number_ramps r
JOIN sending_numbers n ON n.phone_number_id = r.phone_number_id
WHERE r.ended_at IS NULL AND (CAST(:n AS text) IS NULL OR r.phone_number_id = CAST(:n AS text))
ORDER BY r.phone_number_id
FOR UPDATE OF r
