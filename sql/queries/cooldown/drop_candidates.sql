-- Numbers whose quality dropped and that have no open ramp: active numbers rated YELLOW or RED, and numbers the
-- 05:50 check or a sender retired for their quality (a RED rotation) that never had a ramp.
SELECT n.phone_number_id, n.display_phone, n.role, n.shard, n.active, n.quality_rating, n.status,
       n.quality_changed_at
FROM sending_numbers n
WHERE n.quality_rating IN ('YELLOW', 'RED')
  AND NOT EXISTS (SELECT 1 FROM number_ramps r WHERE r.phone_number_id = n.phone_number_id AND r.ended_at IS NULL)
  AND (n.active OR (n.retired_reason ILIKE '%quality%'
                    AND NOT EXISTS (SELECT 1 FROM number_ramps r WHERE r.phone_number_id = n.phone_number_id)))
ORDER BY n.phone_number_id
