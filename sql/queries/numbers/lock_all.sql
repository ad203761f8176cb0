-- Every sending number, locked for an operator rotation (two rotations never interleave).
SELECT phone_number_id, role, shard, active, quality_rating, status FROM sending_numbers
ORDER BY phone_number_id
FOR UPDATE
