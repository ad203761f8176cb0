-- Failed rows by error code and skipped rows by reason, per shard and number (classified in Python).
SELECT p.shard, coalesce(d.phone_number_id, p.phone_number_id) AS phone_number_id, d.status,
       d.error_code, d.skip_reason, count(*) AS n
FROM delivery_plan p
JOIN deliveries d ON d.business_date = p.business_date AND d.advisor_id = p.advisor_id
WHERE p.business_date = :business_date AND d.status IN ('failed', 'skipped')
GROUP BY 1, 2, 3, 4, 5
