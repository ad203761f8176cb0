-- AI compliance review of approved packs in the nightly window (include/content/ai_review.py), next to the
-- rules engine of render QC: verdicts cached by (text hash, model), the day's token and cost usage per model,
-- and how each pack was reviewed on each date (packs reviewed rules-only are marked so).

-- One verdict per pack text (sha256 of the prompt version, title, body, disclaimer) and model. Reused for
-- unchanged text: an unchanged rerun calls no model, and a degraded service falls back to these.
CREATE TABLE ai_compliance_verdicts (
    text_sha256       text NOT NULL CHECK (text_sha256 ~ '^[0-9a-f]{64}$'),
    model             text NOT NULL CHECK (length(model) > 0),
    verdict           text NOT NULL CHECK (verdict IN ('pass', 'fail')),
    findings          jsonb NOT NULL DEFAULT '[]'::jsonb,
    prompt_tokens     integer NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens integer NOT NULL CHECK (completion_tokens >= 0),
    cost              numeric(12, 6) NOT NULL CHECK (cost >= 0),
    latency_ms        integer NOT NULL CHECK (latency_ms >= 0),
    first_pack_key    text NOT NULL,
    reviewed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (text_sha256, model),
    CONSTRAINT ai_verdicts_fail_has_findings CHECK (verdict = 'pass' OR jsonb_array_length(findings) > 0)
);
CREATE INDEX ai_compliance_verdicts_text_idx ON ai_compliance_verdicts (text_sha256, reviewed_at DESC);

-- Tokens and cost (INR, from our rate card) spent per IST day and model: what the daily ceilings are checked against.
CREATE TABLE ai_usage_daily (
    usage_day          date NOT NULL,
    model              text NOT NULL,
    calls              integer NOT NULL DEFAULT 0 CHECK (calls >= 0),
    failures           integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    prompt_tokens      bigint NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens  bigint NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    total_tokens       bigint NOT NULL DEFAULT 0 CHECK (total_tokens >= 0),
    cost               numeric(14, 6) NOT NULL DEFAULT 0 CHECK (cost >= 0),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (usage_day, model),
    CONSTRAINT ai_usage_total CHECK (total_tokens = prompt_tokens + completion_tokens)
);

-- How each approved pack of a date was reviewed. mode: 'ai' (main model), 'ai_light' (the lighter model), 'cache'
-- (an earlier verdict for the same text, any model), 'rules_only' (no AI verdict: the rules engine alone decided).
-- source: 'ai:<model>', 'cache' or 'rules'. reason says why a pack was not reviewed by the main model.
CREATE TABLE pack_compliance_reviews (
    business_date  date NOT NULL,
    pack_id        bigint NOT NULL REFERENCES content_packs (pack_id),
    text_sha256    text NOT NULL CHECK (text_sha256 ~ '^[0-9a-f]{64}$'),
    mode           text NOT NULL CHECK (mode IN ('ai', 'ai_light', 'cache', 'rules_only')),
    source         text NOT NULL CHECK (source IN ('rules', 'cache') OR source ~ '^ai:.+'),
    model          text,
    verdict        text CHECK (verdict IN ('pass', 'fail')),
    findings       jsonb NOT NULL DEFAULT '[]'::jsonb,
    reason         text,
    renders_failed integer NOT NULL DEFAULT 0 CHECK (renders_failed >= 0),
    reviewed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_date, pack_id),
    CONSTRAINT pack_reviews_rules_only CHECK ((mode = 'rules_only') = (verdict IS NULL)),
    CONSTRAINT pack_reviews_rules_only_reason CHECK (mode <> 'rules_only' OR reason IS NOT NULL)
);
CREATE INDEX pack_compliance_reviews_mode_idx ON pack_compliance_reviews (business_date, mode);
