-- Move up to :n of a ramped number's plan rows of a date (those without a delivery, highest advisor ids first,
-- so the rows it keeps are stable) to another number and its shard. Returns how many moved.
WITH picked AS (
    SELECT p.advisor_id FROM delivery_plan p
    WHERE p.business_date = :business_date AND p.phone_number_id = :from_number
      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.business_date = p.business_date
                                                  AND d.advisor_id = p.advisor_id)
    ORDER BY p.advisor_id DESC
    LIMIT :n
    FOR UPDATE
)
UPDATE delivery_plan p SET phone_number_id = :to_number, shard = :to_shard
FROM picked WHERE p.business_date = :business_date AND p.advisor_id = picked.advisor_id
