-- Core schema of the advisor content-delivery platform.
-- Every later DAG reads and writes these tables; invariants are enforced here, not in Python.

CREATE TABLE segments (
    code        text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,31}$'),
    name        text NOT NULL,
    send_order  smallint NOT NULL UNIQUE CHECK (send_order BETWEEN 1 AND 4)
);

INSERT INTO segments (code, name, send_order) VALUES
    ('mutual_fund', 'Mutual fund distributors', 1),
    ('equity',      'Equity research advisors', 2),
    ('insurance',   'Insurance advisors',       3),
    ('wealth',      'Wealth managers',          4);

CREATE TABLE advisors (
    advisor_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_ref     text NOT NULL UNIQUE,
    name             text NOT NULL CHECK (length(btrim(name)) > 0),
    phone_e164       text NOT NULL UNIQUE CHECK (phone_e164 ~ '^\+[1-9][0-9]{7,14}$'),
    segment          text NOT NULL REFERENCES segments (code),
    language         text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2}(_[A-Z]{2})?$'),
    registration_no  text NOT NULL CHECK (length(btrim(registration_no)) > 0),
    contact_email    text,
    opted_in         boolean NOT NULL DEFAULT false,
    consent_at       timestamptz,
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- WhatsApp business messaging needs recorded consent: opted-in without a consent time is invalid.
    CONSTRAINT advisors_consent_recorded CHECK (NOT opted_in OR consent_at IS NOT NULL)
);
CREATE INDEX advisors_segment_idx ON advisors (segment) WHERE active AND opted_in;

CREATE TABLE do_not_contact (
    phone_e164       text PRIMARY KEY CHECK (phone_e164 ~ '^\+[1-9][0-9]{7,14}$'),
    reason           text NOT NULL CHECK (length(btrim(reason)) > 0),
    source           text NOT NULL CHECK (source IN ('import', 'inbound_opt_out', 'operator', 'api_opt_out', 'regulator')),
    source_event_id  bigint,
    added_by         text NOT NULL DEFAULT 'system',
    added_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE import_runs (
    import_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    accepted     integer NOT NULL DEFAULT 0 CHECK (accepted >= 0),
    rejected     integer NOT NULL DEFAULT 0 CHECK (rejected >= 0)
);

CREATE TABLE import_rejections (
    import_id     bigint NOT NULL REFERENCES import_runs (import_id) ON DELETE CASCADE,
    row_number    integer NOT NULL CHECK (row_number >= 1),
    external_ref  text,
    raw_value     text,
    reason        text NOT NULL,
    PRIMARY KEY (import_id, row_number)
);

CREATE TABLE content_packs (
    pack_id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pack_key               text NOT NULL UNIQUE,
    business_date          date,
    scope                  text NOT NULL CHECK (scope IN ('all', 'segment', 'advisor')),
    segment                text REFERENCES segments (code),
    advisor_id             bigint REFERENCES advisors (advisor_id),
    title                  text NOT NULL,
    body                   text NOT NULL CHECK (length(btrim(body)) > 0),
    disclaimer             text NOT NULL DEFAULT '',
    artwork                text NOT NULL DEFAULT 'default',
    risk_level             smallint NOT NULL DEFAULT 1 CHECK (risk_level BETWEEN 1 AND 5),
    status                 text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    submitted_at           timestamptz NOT NULL DEFAULT now(),
    approved_by            text,
    approved_at            timestamptz,
    is_evergreen_fallback  boolean NOT NULL DEFAULT false,
    retired_at             timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT content_packs_scope_target CHECK (
        (scope = 'all'     AND segment IS NULL     AND advisor_id IS NULL) OR
        (scope = 'segment' AND segment IS NOT NULL AND advisor_id IS NULL) OR
        (scope = 'advisor' AND advisor_id IS NOT NULL)),
    CONSTRAINT content_packs_approval_recorded CHECK (
        status <> 'approved' OR (approved_by IS NOT NULL AND approved_at IS NOT NULL)),
    -- Evergreen fallbacks are undated; daily packs always name their business date.
    CONSTRAINT content_packs_evergreen_undated CHECK (is_evergreen_fallback = (business_date IS NULL))
);
CREATE INDEX content_packs_date_status_idx ON content_packs (business_date, status) WHERE NOT is_evergreen_fallback;
CREATE INDEX content_packs_evergreen_idx ON content_packs (pack_id) WHERE is_evergreen_fallback AND retired_at IS NULL;

CREATE TABLE renders (
    render_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    business_date   date NOT NULL,
    advisor_id      bigint NOT NULL REFERENCES advisors (advisor_id),
    pack_id         bigint NOT NULL REFERENCES content_packs (pack_id),
    input_sha256    text NOT NULL CHECK (input_sha256 ~ '^[0-9a-f]{64}$'),
    storage_uri     text NOT NULL,
    content_sha256  text CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    bytes           integer CHECK (bytes > 0),
    width           integer CHECK (width > 0),
    height          integer CHECK (height > 0),
    mime_type       text CHECK (mime_type IN ('image/jpeg', 'image/png')),
    qc_status       text NOT NULL DEFAULT 'pending' CHECK (qc_status IN ('pending', 'passed', 'failed')),
    qc_reasons      jsonb NOT NULL DEFAULT '[]'::jsonb,
    qc_checked_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (business_date, advisor_id),
    CONSTRAINT renders_failed_has_reason CHECK (qc_status <> 'failed' OR jsonb_array_length(qc_reasons) > 0)
);
CREATE INDEX renders_input_sha_idx ON renders (input_sha256);
CREATE INDEX renders_qc_idx ON renders (business_date, qc_status);

CREATE TABLE whatsapp_templates (
    template_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL,
    language        text NOT NULL,
    purpose         text NOT NULL DEFAULT 'daily_pack',
    variant_rank    smallint NOT NULL DEFAULT 1 CHECK (variant_rank >= 1),
    category        text NOT NULL DEFAULT 'MARKETING' CHECK (category IN ('MARKETING', 'UTILITY', 'AUTHENTICATION')),
    status          text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('APPROVED', 'PENDING', 'REJECTED', 'PAUSED',
                        'DISABLED', 'IN_APPEAL', 'PENDING_DELETION', 'DELETED', 'LIMIT_EXCEEDED')),
    quality         text NOT NULL DEFAULT 'UNKNOWN' CHECK (quality IN ('GREEN', 'YELLOW', 'RED', 'UNKNOWN')),
    body_param_count smallint NOT NULL DEFAULT 0 CHECK (body_param_count >= 0),
    wa_template_id  text,
    last_checked_at timestamptz,
    UNIQUE (name, language),
    UNIQUE (purpose, language, variant_rank)
);

CREATE TABLE sending_numbers (
    phone_number_id  text PRIMARY KEY CHECK (phone_number_id ~ '^[0-9]{5,20}$'),
    display_phone    text NOT NULL UNIQUE CHECK (display_phone ~ '^\+[1-9][0-9]{7,14}$'),
    shard            smallint CHECK (shard >= 0),
    role             text NOT NULL CHECK (role IN ('primary', 'hot_spare')),
    quality_rating   text NOT NULL DEFAULT 'UNKNOWN' CHECK (quality_rating IN ('GREEN', 'YELLOW', 'RED', 'NA', 'UNKNOWN')),
    status           text NOT NULL DEFAULT 'CONNECTED',
    throughput_mps   integer NOT NULL DEFAULT 80 CHECK (throughput_mps > 0),
    messaging_tier   text NOT NULL DEFAULT 'TIER_2K',
    active           boolean NOT NULL DEFAULT true,
    last_checked_at  timestamptz,
    CONSTRAINT sending_numbers_primary_has_shard CHECK ((role = 'primary') = (shard IS NOT NULL))
);
CREATE UNIQUE INDEX sending_numbers_one_active_primary_per_shard ON sending_numbers (shard) WHERE role = 'primary' AND active;

CREATE TABLE delivery_plan (
    business_date    date NOT NULL,
    advisor_id       bigint NOT NULL REFERENCES advisors (advisor_id),
    segment          text NOT NULL REFERENCES segments (code),
    pack_id          bigint NOT NULL REFERENCES content_packs (pack_id),
    render_id        bigint REFERENCES renders (render_id),
    content_source   text NOT NULL DEFAULT 'approved' CHECK (content_source IN ('approved', 'fallback')),
    template_name    text NOT NULL,
    template_language text NOT NULL DEFAULT 'en',
    phone_number_id  text NOT NULL REFERENCES sending_numbers (phone_number_id),
    shard            smallint NOT NULL CHECK (shard >= 0),
    jitter_ms        integer NOT NULL CHECK (jitter_ms >= 0),
    planned_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_date, advisor_id)
);
CREATE INDEX delivery_plan_shard_idx ON delivery_plan (business_date, phone_number_id, segment, jitter_ms);

CREATE TABLE deliveries (
    delivery_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    business_date    date NOT NULL,
    advisor_id       bigint NOT NULL REFERENCES advisors (advisor_id),
    phone_number_id  text REFERENCES sending_numbers (phone_number_id),
    to_phone         text NOT NULL CHECK (to_phone ~ '^\+[1-9][0-9]{7,14}$'),
    template_name    text,
    pack_id          bigint REFERENCES content_packs (pack_id),
    status           text NOT NULL DEFAULT 'queued' CHECK (status IN
                        ('queued', 'sending', 'unknown', 'accepted', 'sent', 'delivered', 'read', 'failed', 'skipped')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    wamid            text UNIQUE,
    error_code       integer,
    error_title      text,
    skip_reason      text,
    api_latency_ms   integer CHECK (api_latency_ms >= 0),
    queued_at        timestamptz NOT NULL DEFAULT now(),
    sending_at       timestamptz,
    accepted_at      timestamptz,
    sent_at          timestamptz,
    delivered_at     timestamptz,
    read_at          timestamptz,
    failed_at        timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (business_date, advisor_id),
    CONSTRAINT deliveries_key_matches CHECK (idempotency_key = business_date::text || ':' || advisor_id::text),
    CONSTRAINT deliveries_failed_has_code CHECK (status <> 'failed' OR error_code IS NOT NULL),
    CONSTRAINT deliveries_skipped_has_reason CHECK (status <> 'skipped' OR skip_reason IS NOT NULL),
    CONSTRAINT deliveries_accepted_has_wamid CHECK (
        status NOT IN ('accepted', 'sent', 'delivered', 'read') OR wamid IS NOT NULL)
);
CREATE INDEX deliveries_date_status_idx ON deliveries (business_date, status);
CREATE INDEX deliveries_number_idx ON deliveries (business_date, phone_number_id, status);

CREATE TABLE webhook_events (
    event_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedupe_key        text NOT NULL UNIQUE,
    kind              text NOT NULL CHECK (kind IN ('status', 'message', 'error')),
    wamid             text,
    status            text,
    from_phone        text,
    event_ts          timestamptz,
    payload           jsonb NOT NULL,
    raw_body          text NOT NULL,
    signature_valid   boolean NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    processed_at      timestamptz,
    process_error     text
);
CREATE INDEX webhook_events_unprocessed_idx ON webhook_events (event_id) WHERE processed_at IS NULL;
CREATE INDEX webhook_events_wamid_idx ON webhook_events (wamid);

ALTER TABLE do_not_contact
    ADD CONSTRAINT do_not_contact_source_event_fk FOREIGN KEY (source_event_id) REFERENCES webhook_events (event_id);

CREATE TABLE ops_controls (
    control     text PRIMARY KEY CHECK (control IN ('sending')),
    paused      boolean NOT NULL DEFAULT false,
    reason      text,
    changed_by  text NOT NULL DEFAULT 'system',
    changed_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ops_controls_pause_has_reason CHECK (NOT paused OR length(btrim(coalesce(reason, ''))) > 0)
);
INSERT INTO ops_controls (control, paused, reason) VALUES ('sending', false, 'initial state');

CREATE TABLE audit_log (
    audit_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL CHECK (length(btrim(actor)) > 0),
    action     text NOT NULL CHECK (length(btrim(action)) > 0),
    target     text,
    reason     text,
    details    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
