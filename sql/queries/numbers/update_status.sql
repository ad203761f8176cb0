UPDATE sending_numbers
SET quality_rating = :quality_rating, status = :status, throughput_mps = :throughput_mps,
    messaging_tier = :messaging_tier, last_checked_at = now()
WHERE phone_number_id = :phone_number_id
