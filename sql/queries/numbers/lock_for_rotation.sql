SELECT phone_number_id, role, shard, active FROM sending_numbers
WHERE active OR phone_number_id = :n
ORDER BY phone_number_id
FOR UPDATE
