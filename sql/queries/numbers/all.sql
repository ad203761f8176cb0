SELECT phone_number_id, role, shard, active, quality_rating, status FROM sending_numbers
