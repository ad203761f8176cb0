INSERT INTO number_ramps (phone_number_id, shard, started_at, reason, quality_at_start, cooldown_until)
VALUES (:phone_number_id, :shard, :started_at, :reason, :quality, :cooldown_until)
ON CONFLICT (phone_number_id) WHERE ended_at IS NULL DO NOTHING
RETURNING ramp_id
