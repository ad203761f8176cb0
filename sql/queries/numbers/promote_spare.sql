UPDATE sending_numbers SET role = 'primary', shard = :shard WHERE phone_number_id = :n
