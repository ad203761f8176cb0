SELECT phone_number_id, display_phone FROM sending_numbers
WHERE shard = :shard AND role = 'primary' AND active
FOR UPDATE
