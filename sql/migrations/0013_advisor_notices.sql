-- Advisor delay notices (issue 17 §6): the in-app outbox and the log of emailed notices.
--
-- A segment is late when, more than FA_ADVISOR_NOTICE_LATE_AFTER_MIN after the 06:00 slot, some of its planned rows
-- are still unsent (include/advisor_notices/delays.py). Every affected advisor (planned, message not yet accepted,
-- still eligible: active, opted in, not on the do-not-contact list) gets notice number 1, 2, 3 ... of the day, one
-- every FA_ADVISOR_NOTICE_EVERY_MIN while affected: one in-app row here and, with an email address, one email row.
-- The (business_date, advisor_id, seq) keys are the "at most one notice per cadence step" guard: a retried or
-- overlapping run inserts the same key and gets nothing back. The advisors table already has `contact_email`;
-- an advisor without one gets the in-app notice only.

-- In-app notices: the advisor app reads this outbox (status pending -> delivered when the app has shown it).
CREATE TABLE advisor_notice_outbox (
    notice_id       bigserial PRIMARY KEY,
    business_date   date NOT NULL,
    advisor_id      bigint NOT NULL REFERENCES advisors (advisor_id),
    segment         text NOT NULL REFERENCES segments (code),
    seq             integer NOT NULL CHECK (seq >= 1),           -- the advisor's 1st, 2nd ... notice of the day
    incident_id     bigint REFERENCES incidents (incident_id),   -- the open incident it belongs to, if any
    eta_at          timestamptz,                                 -- NULL: no estimate (paused or stalled)
    eta_basis       text NOT NULL CHECK (eta_basis IN ('send_rate', 'paused', 'stalled')),
    next_update_at  timestamptz NOT NULL,
    title           text NOT NULL CHECK (length(btrim(title)) > 0),
    body            text NOT NULL CHECK (length(btrim(body)) > 0),
    created_at      timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered')),
    delivered_at    timestamptz,
    CONSTRAINT advisor_notice_outbox_once UNIQUE (business_date, advisor_id, seq),
    CONSTRAINT advisor_notice_outbox_delivered CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX advisor_notice_outbox_pending_idx ON advisor_notice_outbox (advisor_id, created_at)
    WHERE status = 'pending';

-- Emailed notices, sent after the row commits (through Airflow's SMTP connection). pending -> sent, or failed
-- (retried by the next run until FA_ADVISOR_NOTICE_EMAIL_MAX_ATTEMPTS, then 'failed' stays and a P2 says so);
-- superseded (a newer notice exists before this one went out) or cancelled (the advisor stopped being affected).
CREATE TABLE advisor_notice_emails (
    email_id        bigserial PRIMARY KEY,
    notice_id       bigint NOT NULL UNIQUE REFERENCES advisor_notice_outbox (notice_id),
    business_date   date NOT NULL,
    advisor_id      bigint NOT NULL REFERENCES advisors (advisor_id),
    segment         text NOT NULL REFERENCES segments (code),
    seq             integer NOT NULL CHECK (seq >= 1),
    incident_id     bigint REFERENCES incidents (incident_id),
    to_address      text NOT NULL CHECK (to_address ~ '^[^@\s]+@[^@\s]+$'),
    subject         text NOT NULL,
    body            text NOT NULL,
    eta_at          timestamptz,
    eta_basis       text NOT NULL CHECK (eta_basis IN ('send_rate', 'paused', 'stalled')),
    message_id      text NOT NULL UNIQUE,                        -- deterministic Message-ID: a resend is recognisable
    created_at      timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'sent', 'failed', 'superseded', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_attempt_at timestamptz,
    last_error      text,
    sent_at         timestamptz,
    CONSTRAINT advisor_notice_emails_once UNIQUE (business_date, advisor_id, seq),
    CONSTRAINT advisor_notice_emails_sent CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
    CONSTRAINT advisor_notice_emails_failed_has_error CHECK (status <> 'failed' OR last_error IS NOT NULL)
);
CREATE INDEX advisor_notice_emails_todo_idx ON advisor_notice_emails (business_date, email_id)
    WHERE status IN ('pending', 'failed');

COMMENT ON TABLE advisor_notice_outbox IS 'In-app delay notices to advisors (issue 17 §6); one per advisor, day and seq.';
COMMENT ON TABLE advisor_notice_emails IS 'Emailed delay notices and their sending state; one per in-app notice with an address.';
