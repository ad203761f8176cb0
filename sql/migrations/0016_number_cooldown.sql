-- WhatsApp quality-drop cooldown and volume ramp (issue 18 §1, runbook 000 "quality drop").
--
-- A number whose quality drops (YELLOW or RED) gets a recovery plan: a cooldown of FA_COOLDOWN_HOURS (48-72 h)
-- at 0% of its normal share of the plan, then one step of FA_COOLDOWN_STEP_PCT (25 -> 50 -> 75 -> 100) per
-- healthy (GREEN) day; a YELLOW day holds the step, a RED day resets to 0% and restarts the cooldown
-- (include/delivery/cooldown.py, the pure policy). One open ramp per number (ended_at IS NULL); history stays.
-- The overflow (what the number may not carry) goes to the cover number (the hot spare, serving an overflow
-- shard while the ramp lasts) or other healthy numbers; see include/delivery/cooldown_store.py.
CREATE TABLE number_ramps (
    ramp_id              bigserial PRIMARY KEY,
    phone_number_id      text NOT NULL REFERENCES sending_numbers (phone_number_id),
    shard                smallint CHECK (shard >= 0),             -- the shard the number served at the drop
    started_at           timestamptz NOT NULL,                    -- when the drop was recorded
    reason               text NOT NULL CHECK (length(btrim(reason)) > 0),
    quality_at_start     text NOT NULL CHECK (quality_at_start IN ('YELLOW', 'RED')),
    cooldown_until       timestamptz NOT NULL,                    -- no step before this instant
    step                 smallint NOT NULL DEFAULT 0 CHECK (step >= 0),
    share_pct            smallint NOT NULL DEFAULT 0 CHECK (share_pct BETWEEN 0 AND 100),
    last_evaluated_day   date,                                    -- the last business date judged
    last_healthy_day     date,                                    -- the last business date that counted as healthy
    cover_number         text REFERENCES sending_numbers (phone_number_id),  -- serves the overflow shard
    cover_shard          smallint CHECK (cover_shard >= 0),
    content_report_uri   text,                                    -- the 7-day content review written at the drop
    override_reason      text,
    override_by          text,
    overridden_at        timestamptz,
    ended_at             timestamptz,
    ended_reason         text,
    CONSTRAINT number_ramps_override_has_reason CHECK (override_by IS NULL OR length(btrim(override_reason)) > 0),
    CONSTRAINT number_ramps_cover_has_shard CHECK ((cover_number IS NULL) = (cover_shard IS NULL))
);
CREATE UNIQUE INDEX number_ramps_one_open_per_number ON number_ramps (phone_number_id) WHERE ended_at IS NULL;

-- What each business date's evaluation decided (the ramp over days, shown in the 05:50 summary and the tests).
CREATE TABLE number_ramp_days (
    ramp_id         bigint NOT NULL REFERENCES number_ramps (ramp_id),
    business_date   date NOT NULL,
    quality         text NOT NULL,
    share_pct       smallint NOT NULL CHECK (share_pct BETWEEN 0 AND 100),
    decision        text NOT NULL,
    evaluated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ramp_id, business_date)
);

-- Non-critical sends (canaries, re-sends, marketing variants) held back because their number's quality dropped:
-- the record of each refusal, with what was held and why.
CREATE TABLE noncritical_send_holds (
    hold_id          bigserial PRIMARY KEY,
    held_at          timestamptz NOT NULL DEFAULT now(),
    business_date    date NOT NULL,
    phone_number_id  text NOT NULL REFERENCES sending_numbers (phone_number_id),
    message_class    text NOT NULL CHECK (message_class IN ('canary', 'resend', 'marketing')),
    held_count       integer NOT NULL CHECK (held_count >= 0),
    reason           text NOT NULL,
    actor            text NOT NULL
);
CREATE INDEX noncritical_send_holds_date_idx ON noncritical_send_holds (business_date);
