SELECT phone_number_id, display_phone, throughput_mps, quality_rating, status
FROM sending_numbers WHERE shard = :shard AND role = 'primary' AND active
