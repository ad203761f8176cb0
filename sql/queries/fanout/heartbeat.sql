-- Heartbeat this sender's lease; count the live senders sharing its number and say how long the earliest of the
-- others has been on it (the start gate's question: are they still waiting at their gate?).
WITH up AS (
    INSERT INTO sender_leases (lease_id, business_date, shard, segment, phone_number_id, heartbeat_at)
    VALUES (CAST(:lease_id AS uuid), :business_date, :shard, :segment, :phone_number_id, now())
    ON CONFLICT (lease_id) DO UPDATE SET heartbeat_at = now(), phone_number_id = EXCLUDED.phone_number_id
)
SELECT 1 + count(*) AS live,
       coalesce(extract(epoch FROM now() - min(started_at)), 0)::float8 AS earliest_peer_s
FROM sender_leases
WHERE phone_number_id = :phone_number_id AND lease_id <> CAST(:lease_id AS uuid)
  AND heartbeat_at > now() - interval '3 seconds'
