-- Numbers that sent on the date, with their stored quality and whether they were retired since.
SELECT DISTINCT n.phone_number_id, n.display_phone, n.quality_rating, n.active, n.retired_reason, n.throughput_mps
FROM deliveries d JOIN sending_numbers n ON n.phone_number_id = d.phone_number_id
WHERE d.business_date = :business_date AND d.accepted_at IS NOT NULL
