-- Senders sharing a number start together (include/delivery/fanout/pacing.py, the start gate): a lease records
-- when its sender joined, so a sender arriving after its peers' gate has closed knows they may have taken a
-- larger share and lets them shrink before it sends.
ALTER TABLE sender_leases ADD COLUMN started_at timestamptz NOT NULL DEFAULT now();
