-- What the weekly and monthly maintenance DAGs record.

-- Every backup taken, with what it must contain: row counts and checksums of key tables, measured in
-- the very snapshot pg_dump exported, so a restore can be compared exactly.
CREATE TABLE backups (
    backup_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('daily', 'weekly', 'manual')),
    uri             text NOT NULL UNIQUE,
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes           bigint NOT NULL CHECK (bytes > 0),
    snapshot_at     timestamptz NOT NULL,
    newest_data_at  timestamptz,
    table_counts    jsonb NOT NULL,
    table_checksums jsonb NOT NULL,
    verified_at     timestamptz,
    verify_ok       boolean,
    verify_detail   jsonb,
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backups_live_idx ON backups (kind, snapshot_at DESC) WHERE deleted_at IS NULL;

CREATE TABLE dr_drills (
    drill_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    backup_id       bigint NOT NULL REFERENCES backups (backup_id),
    started_at      timestamptz NOT NULL DEFAULT now(),
    rto_s           numeric NOT NULL CHECK (rto_s >= 0),
    rpo_s           numeric CHECK (rpo_s >= 0),
    rto_target_s    integer NOT NULL,
    rpo_target_s    integer NOT NULL,
    plan_date       date,
    plan_rows       integer,
    plan_matches    boolean,
    ok              boolean NOT NULL,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- Month-end figures for capacity planning (growth is charted from these).
CREATE TABLE capacity_snapshots (
    month              date PRIMARY KEY CHECK (extract(day FROM month) = 1),
    eligible_advisors  integer NOT NULL,
    messages_accepted  bigint NOT NULL,
    peak_mps           numeric NOT NULL,
    throughput_mps     integer NOT NULL,
    db_bytes           bigint NOT NULL,
    taken_at           timestamptz NOT NULL DEFAULT now()
);

-- Archived rows leave a record: which file holds them, so nothing is deleted without a trace.
CREATE TABLE archive_runs (
    archive_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name   text NOT NULL CHECK (table_name IN ('webhook_events', 'deliveries')),
    first_id     bigint NOT NULL,
    last_id      bigint NOT NULL,
    rows         integer NOT NULL CHECK (rows > 0),
    uri          text NOT NULL,
    sha256       text NOT NULL,
    archived_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (table_name, first_id, last_id)
);

-- Retiring a fallback pack records why.
ALTER TABLE content_packs ADD COLUMN retired_reason text;
