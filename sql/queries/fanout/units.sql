-- Sender units of a date: one per (shard, segment) that still has work, with its current number.
-- Ordered segment group first, then shard, so that however few executor slots run at once, every
-- number is kept busy.
SELECT p.shard, p.segment, n.phone_number_id, n.display_phone, count(*) AS open_rows
FROM delivery_plan p
JOIN deliveries d ON d.business_date = p.business_date AND d.advisor_id = p.advisor_id
LEFT JOIN sending_numbers n ON n.shard = p.shard AND n.role = 'primary' AND n.active
JOIN segments s ON s.code = p.segment
WHERE p.business_date = :business_date AND d.status IN ('queued', 'sending', 'unknown')
GROUP BY s.send_order, p.shard, p.segment, n.phone_number_id, n.display_phone
ORDER BY s.send_order, p.shard
