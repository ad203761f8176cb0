-- What the fan-out sender needs at run time.

-- Retry scheduling and the last error of a row that is going to be retried.
ALTER TABLE deliveries ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE deliveries ADD COLUMN last_error_code integer;
CREATE INDEX deliveries_unresolved_idx ON deliveries (business_date, status) WHERE status IN ('queued', 'sending', 'unknown');

-- Every API attempt, for in-window monitoring and latency KPIs.
CREATE TABLE delivery_attempts (
    attempt_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    business_date   date NOT NULL,
    advisor_id      bigint NOT NULL REFERENCES advisors (advisor_id),
    attempt_no      integer NOT NULL CHECK (attempt_no >= 1),
    phone_number_id text REFERENCES sending_numbers (phone_number_id),
    outcome         text NOT NULL CHECK (outcome IN ('accepted', 'retry', 'failed', 'unknown', 'skipped')),
    error_code      integer,
    latency_ms      integer CHECK (latency_ms >= 0),
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_attempts_at_idx ON delivery_attempts (business_date, at);

-- Webhooks echo our idempotency key back: status evidence for requests whose outcome was unknown.
ALTER TABLE webhook_events ADD COLUMN biz_opaque text;
CREATE INDEX webhook_events_biz_opaque_idx ON webhook_events (biz_opaque) WHERE biz_opaque IS NOT NULL;

-- An alert raised once per (date, key), however many sender processes see the condition.
CREATE TABLE alerts_raised (
    business_date  date NOT NULL,
    alert_key      text NOT NULL,
    raised_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_date, alert_key)
);

-- Live senders per number, so concurrent senders share a number's throughput instead of exceeding it.
CREATE TABLE sender_leases (
    lease_id         uuid PRIMARY KEY,
    business_date    date NOT NULL,
    shard            smallint NOT NULL,
    segment          text NOT NULL,
    phone_number_id  text NOT NULL,
    heartbeat_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sender_leases_number_idx ON sender_leases (phone_number_id, heartbeat_at);
