-- What the nightly content window needs: per-pack renders, a QC rule trail, and canary runs.

-- An advisor can have renders of several packs on one date (their approved pack, and the evergreen
-- fallback that replaces it when it fails QC); the render of one (date, advisor, pack) is unique.
ALTER TABLE renders DROP CONSTRAINT renders_business_date_advisor_id_key;
ALTER TABLE renders ADD CONSTRAINT renders_date_advisor_pack_key UNIQUE (business_date, advisor_id, pack_id);
-- The renderer's layout manifest: which text blocks were drawn where, at what size (QC evidence).
ALTER TABLE renders ADD COLUMN manifest jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE renders ADD COLUMN render_ms integer CHECK (render_ms >= 0);

-- Fallback assignments whose render failed QC are replaced; this index serves "packs that failed
-- for this advisor on this date".
CREATE INDEX renders_failed_idx ON renders (business_date, advisor_id) WHERE qc_status = 'failed';

-- The nightly canary: tomorrow's real renders sent to the internal list through the fan-out sender.
CREATE TABLE canary_runs (
    canary_run_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    business_date  date NOT NULL,
    run_id         text,
    status         text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'passed', 'failed')),
    recipients     integer NOT NULL DEFAULT 0 CHECK (recipients >= 0),
    accepted       integer NOT NULL DEFAULT 0 CHECK (accepted >= 0),
    delivered      integer NOT NULL DEFAULT 0 CHECK (delivered >= 0),
    failed         integer NOT NULL DEFAULT 0 CHECK (failed >= 0),
    summary        text,
    details        jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    CONSTRAINT canary_runs_finished CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX canary_runs_date_idx ON canary_runs (business_date, started_at DESC);

-- One row per canary message. Same shape and life cycle as a delivery, so the fan-out's sender
-- (claim, send, retry, reconcile) runs unchanged over it; it never counts toward the advisor SLA.
CREATE TABLE canary_sends (
    delivery_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    canary_run_id    bigint NOT NULL REFERENCES canary_runs (canary_run_id) ON DELETE CASCADE,
    idempotency_key  text NOT NULL UNIQUE,
    business_date    date NOT NULL,
    to_phone         text NOT NULL CHECK (to_phone ~ '^\+[1-9][0-9]{7,14}$'),
    sample_advisor_id bigint NOT NULL REFERENCES advisors (advisor_id),
    render_id        bigint NOT NULL REFERENCES renders (render_id),
    pack_id          bigint NOT NULL REFERENCES content_packs (pack_id),
    segment          text NOT NULL REFERENCES segments (code),
    shard            smallint NOT NULL CHECK (shard >= 0),
    template_name    text NOT NULL,
    template_language text NOT NULL,
    phone_number_id  text REFERENCES sending_numbers (phone_number_id),
    status           text NOT NULL DEFAULT 'queued' CHECK (status IN
                        ('queued', 'sending', 'unknown', 'accepted', 'sent', 'delivered', 'read', 'failed', 'skipped')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    wamid            text UNIQUE,
    error_code       integer,
    error_title      text,
    last_error_code  integer,
    skip_reason      text,
    api_latency_ms   integer,
    next_attempt_at  timestamptz,
    sending_at       timestamptz,
    accepted_at      timestamptz,
    delivered_at     timestamptz,
    failed_at        timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT canary_sends_failed_has_code CHECK (status <> 'failed' OR error_code IS NOT NULL),
    CONSTRAINT canary_sends_accepted_has_wamid CHECK (
        status NOT IN ('accepted', 'sent', 'delivered', 'read') OR wamid IS NOT NULL)
);
CREATE INDEX canary_sends_run_idx ON canary_sends (canary_run_id, shard, status);
