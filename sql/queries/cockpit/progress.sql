-- Progress per shard and the number that now sends it (a rotation moves rows to the hot spare).
SELECT p.shard, coalesce(d.phone_number_id, p.phone_number_id) AS phone_number_id,
       count(*) AS planned,
       count(d.*) AS queued_total,
       count(d.*) FILTER (WHERE d.status IN ('queued', 'sending', 'unknown')) AS in_flight,
       count(d.*) FILTER (WHERE d.status IN ('accepted', 'sent', 'delivered', 'read')) AS accepted,
       count(d.*) FILTER (WHERE d.status IN ('delivered', 'read')) AS delivered,
       count(d.*) FILTER (WHERE d.status = 'read') AS read,
       count(d.*) FILTER (WHERE d.status = 'failed') AS failed,
       count(d.*) FILTER (WHERE d.status = 'skipped') AS skipped
FROM delivery_plan p
LEFT JOIN deliveries d ON d.business_date = p.business_date AND d.advisor_id = p.advisor_id
WHERE p.business_date = :business_date
GROUP BY 1, 2
ORDER BY 1, 2
