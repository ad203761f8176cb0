-- Plan rows per active primary number for a date (all of them, and those not yet handed to the sender), with
-- what the number can take: its throughput over the send window, or the configured daily capacity.
SELECT n.phone_number_id, n.display_phone, n.shard, n.quality_rating, n.status, n.throughput_mps,
       count(p.advisor_id) AS planned,
       count(p.advisor_id) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM deliveries d WHERE d.business_date = p.business_date AND d.advisor_id = p.advisor_id))
           AS movable
FROM sending_numbers n
LEFT JOIN delivery_plan p ON p.business_date = :business_date AND p.phone_number_id = n.phone_number_id
WHERE n.role = 'primary' AND n.active
GROUP BY n.phone_number_id, n.display_phone, n.shard, n.quality_rating, n.status, n.throughput_mps
ORDER BY n.shard
