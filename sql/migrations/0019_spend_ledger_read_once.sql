-- The spend ledger reads each webhook event once when it arrives and once more when it has settled, instead of
-- re-reading every event younger than the settling margin at every refresh (budget/refresh_ledger.sql). At
-- 1,000 msg/s that margin held ~26,000 events, and a refresh cost ~0.2 s of PostgreSQL every time a sender's
-- guard ran.
--   read_through      the highest event id read so far (events above it are new);
--   settle_cutoff     read_through as it was at settle_cutoff_at: once the settling margin has passed since
--                     then, every event at or below it has committed, so the events between last_event_id and
--                     it are read once more (a receiver transaction that committed late is billed then) and
--                     last_event_id moves up to it.
ALTER TABLE spend_watermark ADD COLUMN read_through bigint NOT NULL DEFAULT 0;
ALTER TABLE spend_watermark ADD COLUMN settle_cutoff bigint;
ALTER TABLE spend_watermark ADD COLUMN settle_cutoff_at timestamptz;
UPDATE spend_watermark SET read_through = last_event_id;
