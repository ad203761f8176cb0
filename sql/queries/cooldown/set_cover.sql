UPDATE number_ramps SET cover_number = CAST(:cover AS text), cover_shard = CAST(:cover_shard AS smallint)
WHERE ramp_id = :ramp_id
