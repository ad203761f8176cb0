-- What retention keeps, and what a backup records.

-- "Never twice" outlives retention. Weekly retention archives and deletes `deliveries` older than
-- RETENTION_DAYS, but the plan of those dates stays; without a trace of what was sent, a fan-out or
-- backfill of an archived date would queue the whole plan again. Each archived delivery leaves its
-- key here, written in the transaction that deletes the row, and the fan-out's enqueue skips these keys.
CREATE TABLE sent_keys (
    business_date    date NOT NULL,
    advisor_id       bigint NOT NULL,            -- no foreign key: the proof must outlive the advisor row
    idempotency_key  text NOT NULL,
    delivery_id      bigint NOT NULL,
    final_status     text NOT NULL CHECK (final_status IN
                         ('accepted', 'sent', 'delivered', 'read', 'failed', 'skipped')),
    wamid            text,
    archive_uri      text NOT NULL,              -- the archive file that holds the whole row
    archived_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_date, advisor_id),
    CONSTRAINT sent_keys_key_matches CHECK (idempotency_key = business_date::text || ':' || advisor_id::text)
);

-- A backup verifies every table of the app schema, listed from the catalog when it is taken. Rows
-- from before this migration have NULL here: they recorded the 10 key tables with the older checksum.
ALTER TABLE backups ADD COLUMN tables text[];
ALTER TABLE backups ADD COLUMN checksum_method text;
