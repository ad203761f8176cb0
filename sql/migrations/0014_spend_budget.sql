-- Spend budget (issue 18 §3, runbook 001 "budget exceeded but still sending"): what each message costs, from the
-- `pricing` object of Meta's status webhooks (already stored in webhook_events.payload) times an INR rate card;
-- daily totals the budget guard reads cheaply while the fan-out runs; the kill switch's cause; audited overrides.

-- The rate card: INR per delivered billable message, by pricing category (the webhook's pricing.category) and
-- pricing model ("PMP": per-message pricing since 1 July 2025), from a date. A new card is new rows with a later
-- effective_from; a message is priced with the card in force on its business date.
CREATE TABLE rate_card (
    category         text NOT NULL CHECK (category = lower(category) AND length(btrim(category)) > 0),
    pricing_model    text NOT NULL DEFAULT 'PMP',
    inr_per_message  numeric(10, 4) NOT NULL CHECK (inr_per_message >= 0),
    effective_from   date NOT NULL,
    source           text NOT NULL CHECK (length(btrim(source)) > 0),
    PRIMARY KEY (category, pricing_model, effective_from)
);
-- India (recipient country code +91), INR billing, effective 1 January 2026: Meta's rate card as published at
-- https://developers.facebook.com/documentation/business-messaging/whatsapp/pricing and reproduced by BSPs
-- (https://whats91.com/pricing, https://wabaconnect.com/whatsapp-messaging-api-updated-pricing-in-2026/):
-- marketing ₹0.8631, utility ₹0.1150, authentication ₹0.1150, authentication-international ₹2.30. Base tier:
-- utility and authentication get volume discounts above 750k messages a month, ignored here (the budget errs high).
-- Check the card against Meta's page before relying on it; add rows when Meta publishes a new one.
INSERT INTO rate_card (category, pricing_model, inr_per_message, effective_from, source) VALUES
    ('marketing', 'PMP', 0.8631, DATE '2026-01-01', 'Meta rate card India INR 2026-01-01 (via whats91.com/pricing)'),
    ('utility', 'PMP', 0.1150, DATE '2026-01-01', 'Meta rate card India INR 2026-01-01 (via whats91.com/pricing)'),
    ('authentication', 'PMP', 0.1150, DATE '2026-01-01',
     'Meta rate card India INR 2026-01-01 (via whats91.com/pricing)'),
    ('authentication_international', 'PMP', 2.3000, DATE '2026-01-01',
     'Meta rate card India INR 2026-01-01 (via wabaconnect.com)');

-- One row per message Meta bills or reports pricing for: the first status webhook of a wamid that carries
-- `pricing` (sent, and delivered or read, both carry it: the message is billed once). inr is NULL when the message
-- is billable but the card has no rate for its category: reported by the guard (P1), never dropped.
CREATE TABLE message_spend (
    wamid           text PRIMARY KEY,
    business_date   date NOT NULL,           -- the IST date of the status event that first carried the pricing
    category        text NOT NULL,
    pricing_model   text NOT NULL,
    pricing_type    text,                    -- regular, free_customer_service, free_entry_point
    billable        boolean NOT NULL,
    inr             numeric(12, 4),
    event_id        bigint NOT NULL,         -- the webhook event it came from (no FK: retention archives events)
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (billable OR inr = 0)
);
CREATE INDEX message_spend_date_idx ON message_spend (business_date);

-- Per-date totals, maintained in the same statement that inserts into message_spend (so never out of step with
-- it): a month's spend is a sum over at most 31 rows, which the senders can afford every few seconds.
CREATE TABLE spend_daily (
    business_date  date PRIMARY KEY,
    messages       integer NOT NULL DEFAULT 0 CHECK (messages >= 0),
    billable       integer NOT NULL DEFAULT 0 CHECK (billable >= 0),
    unrated        integer NOT NULL DEFAULT 0 CHECK (unrated >= 0),
    inr            numeric(14, 4) NOT NULL DEFAULT 0 CHECK (inr >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- How far into webhook_events the ledger has read (events are read again until they are older than a settling
-- margin, so a receiver transaction that commits late is never skipped; re-reading is harmless: wamid is unique).
CREATE TABLE spend_watermark (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_event_id  bigint NOT NULL DEFAULT 0,
    refreshed_at   timestamptz
);
INSERT INTO spend_watermark DEFAULT VALUES;

-- Why the kill switch is on: an operator (ops_pause_sending, the cockpit) or the budget guard. A switch the
-- budget engaged is resumed only with an audited budget override (include/delivery/budget.py).
ALTER TABLE ops_controls ADD COLUMN cause text NOT NULL DEFAULT 'operator';
ALTER TABLE ops_controls ADD CONSTRAINT ops_controls_cause_known CHECK (cause IN ('operator', 'budget'));

-- An operator's decision to keep sending past an exceeded budget, for that budget's period (the day, or the month
-- starting at period_start). The guard does not stop sending again for a period with an override.
CREATE TABLE budget_overrides (
    override_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period        text NOT NULL CHECK (period IN ('daily', 'monthly')),
    period_start  date NOT NULL,
    granted_by    text NOT NULL CHECK (length(btrim(granted_by)) > 0),
    reason        text NOT NULL CHECK (length(btrim(reason)) > 0),
    spent_inr     numeric(14, 4) NOT NULL,
    budget_inr    numeric(14, 4) NOT NULL,
    granted_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX budget_overrides_period_idx ON budget_overrides (period, period_start);
