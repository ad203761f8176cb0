-- Sender units of a date: one per (shard, segment) that still has work, with its current number.
SELECT p.shard, p.segment, n.phone_number_id, n.display_phone, count(*) AS open_rows
FROM delivery_plan p
JOIN deliveries d ON d.business_date = p.business_date AND d.advisor_id = p.advisor_id
LEFT JOIN sending_numbers n ON n.shard = p.shard AND n.role = 'primary' AND n.active
WHERE p.business_date = :business_date AND d.status IN ('queued', 'sending', 'unknown')
GROUP BY p.shard, p.segment, n.phone_number_id, n.display_phone
ORDER BY p.shard, p.segment
