-- Shards with open work on a date: their current number and throughput, and the segment groups
-- with open rows in send order (with their counts). include/delivery.units_for turns them into units.
SELECT o.shard, n.phone_number_id, n.display_phone, n.throughput_mps,
       array_agg(o.segment ORDER BY s.send_order) AS segments,
       array_agg(o.open_rows ORDER BY s.send_order) AS open_rows
FROM (SELECT p.shard, p.segment, count(*) AS open_rows
      FROM delivery_plan p
      JOIN deliveries d ON d.business_date = p.business_date AND d.advisor_id = p.advisor_id
      WHERE p.business_date = :business_date AND d.status IN ('queued', 'sending', 'unknown')
      GROUP BY p.shard, p.segment) o
JOIN segments s ON s.code = o.segment
LEFT JOIN sending_numbers n ON n.shard = o.shard AND n.role = 'primary' AND n.active
GROUP BY o.shard, n.phone_number_id, n.display_phone, n.throughput_mps
ORDER BY o.shard
