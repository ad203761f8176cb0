INSERT INTO sending_numbers (phone_number_id, display_phone, shard, role, quality_rating, status,
                             throughput_mps, messaging_tier, active)
VALUES (:phone_number_id, :display_phone, :shard, :role, :quality_rating, 'CONNECTED',
        :throughput_mps, :messaging_tier, true)
ON CONFLICT (phone_number_id) DO NOTHING
