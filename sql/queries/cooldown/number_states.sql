-- Every number's quality and its open ramp's share (NULL: no ramp), for holding non-critical sends.
SELECT n.phone_number_id, n.display_phone, n.quality_rating, r.share_pct
FROM sending_numbers n
LEFT JOIN number_ramps r ON r.phone_number_id = n.phone_number_id AND r.ended_at IS NULL
