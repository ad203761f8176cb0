-- A hot spare fit to carry a ramped number's overflow: active, connected, quality not dropped, not covering already.
SELECT n.phone_number_id, n.display_phone
FROM sending_numbers n
WHERE n.role = 'hot_spare' AND n.active AND n.status = 'CONNECTED' AND n.quality_rating NOT IN ('YELLOW', 'RED')
  AND NOT EXISTS (SELECT 1 FROM number_ramps r WHERE r.cover_number = n.phone_number_id AND r.ended_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM number_ramps r WHERE r.phone_number_id = n.phone_number_id AND r.ended_at IS NULL)
ORDER BY n.phone_number_id
LIMIT 1
FOR UPDATE
