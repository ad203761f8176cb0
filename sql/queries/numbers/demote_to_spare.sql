-- An operator rotation's old number: no shard, still active, available to rotate back to.
UPDATE sending_numbers SET role = 'hot_spare', shard = NULL WHERE phone_number_id = :n
