UPDATE sending_numbers SET active = false, retired_reason = :reason WHERE phone_number_id = :n
