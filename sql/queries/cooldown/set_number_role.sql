-- A ramp's role changes: a cover takes or leaves its overflow shard; a number retired for its quality comes back.
UPDATE sending_numbers SET role = :role, shard = CAST(:shard AS smallint), active = :active,
       retired_reason = CASE WHEN :active THEN NULL ELSE retired_reason END
WHERE phone_number_id = :n
