-- Incident records, the on-call roster and pages (issue 17 §1–§3).
--
-- A P0 or P1 alert opens an incident, or joins the open one with the same dedup key (one per category and
-- business date, see include/incidents/records.py). Everything that happens to it (alerts, pages, escalations,
-- acknowledgements, operator actions, resolution, reminders) is appended to its timeline. The roster says who
-- holds each on-call role and how to reach them; operators edit it with ops_edit_oncall_roster, no deploy.
-- incident_pages is the "page at most once" ledger: escalate() inserts a (incident, role, step) row and sends
-- the page in the same transaction, so a retried or concurrent task never pages twice.

-- The roles the escalation ladders name (include/incidents/escalation.py). A new role needs code that pages
-- it, so the list is a constraint, not free text.
CREATE TABLE oncall_roles (
    role                  text PRIMARY KEY CHECK (role IN (
                              'primary', 'secondary', 'engineering_lead', 'engineering_manager', 'head_of_product',
                              'head_of_operations', 'head_of_marketing', 'compliance_officer', 'legal', 'cto',
                              'ceo', 'board')),
    display_name          text NOT NULL,                    -- "Primary on-call", "CTO", ...
    person                text,                             -- who holds the role now
    slack_channel         text CHECK (slack_channel IS NULL OR slack_channel ~ '^[#@][A-Za-z0-9._-]+$'),
    -- PagerDuty Events API v2 integration (routing) key: 32 characters. NULL: this role is not paged (the
    -- escalation records "not paged: no routing key" on the timeline and tells Slack).
    pagerduty_routing_key text CHECK (pagerduty_routing_key IS NULL OR pagerduty_routing_key ~ '^[A-Za-z0-9]{32}$'),
    email                 text CHECK (email IS NULL OR email ~ '^[^@\s]+@[^@\s]+$'),
    active                boolean NOT NULL DEFAULT true,    -- false: nobody is paged for this role
    updated_at            timestamptz NOT NULL DEFAULT now(),
    updated_by            text
);

CREATE TABLE incidents (
    incident_id             bigserial PRIMARY KEY,
    dedup_key               text NOT NULL,                  -- "<category>:<business date>" (records.dedup_key)
    severity                text NOT NULL CHECK (severity IN ('P0', 'P1', 'P2')),  -- only ever gets worse
    category                text NOT NULL CHECK (category IN (
                                'delivery_rate', 'compliance', 'quality', 'account_suspension', 'sla', 'security',
                                'operational')),
    trigger                 text NOT NULL,                  -- what opened it (the first alert's title)
    business_date           date,
    opened_at               timestamptz NOT NULL,
    acknowledged_at         timestamptz,
    acknowledged_by         text,
    acknowledged_via        text,                           -- 'airflow_ui' (HITL), 'pagerduty', 'operator', ...
    resolved_at             timestamptz,
    resolved_by             text,
    resolved_how            text,                           -- 'automatic: delivery recovered', an operator's words
    postmortem_due_at       timestamptz,                    -- P0 only: opened + 24 h (runbook 000) or 48 h (001)
    postmortem_reminded_at  timestamptz,                    -- the one overdue reminder went out
    -- Impact figures: {"delivery_rate": 0.93, "quality_rating": "YELLOW", ...} and "since": {level: first seen},
    -- the start of each impact ladder (include/incidents/escalation.py impact_levels).
    impact                  jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT incidents_ack_complete CHECK ((acknowledged_at IS NULL) = (acknowledged_by IS NULL)),
    CONSTRAINT incidents_resolve_complete CHECK ((resolved_at IS NULL) = (resolved_by IS NULL)),
    CONSTRAINT incidents_resolved_after_open CHECK (resolved_at IS NULL OR resolved_at >= opened_at)
);
-- One OPEN incident per dedup key; a resolved one does not stop the same condition from opening a new one.
CREATE UNIQUE INDEX incidents_open_dedup_key_uq ON incidents (dedup_key) WHERE resolved_at IS NULL;
-- The escalation task reads the open incidents every 5 minutes.
CREATE INDEX incidents_open_idx ON incidents (opened_at) WHERE resolved_at IS NULL;
-- Automatic resolution looks the open ones up by category and date.
CREATE INDEX incidents_category_date_idx ON incidents (category, business_date) WHERE resolved_at IS NULL;
-- The overdue post-mortem reminder.
CREATE INDEX incidents_postmortem_due_idx ON incidents (postmortem_due_at)
    WHERE postmortem_due_at IS NOT NULL AND postmortem_reminded_at IS NULL;

CREATE TABLE incident_timeline (
    entry_id     bigserial PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    at           timestamptz NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('alert', 'page', 'escalation', 'ack', 'operator_action', 'resolved',
                                               'reminder')),
    actor        text NOT NULL,                             -- 'scheduler', a user, 'pagerduty', a DAG.task
    text         text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX incident_timeline_incident_idx ON incident_timeline (incident_id, at, entry_id);

CREATE TABLE incident_pages (
    incident_id  bigint NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    role         text NOT NULL,                             -- not a foreign key: the roster may change later
    step         text NOT NULL,                             -- the ladder step, e.g. 'time:secondary', 'rate<90:ceo'
    sent_at      timestamptz NOT NULL,
    dedup_key    text NOT NULL,                             -- the PagerDuty dedup key used, incident-<id>-<role>
    routing_key  text,                                      -- where it went (NULL when not paged); acknowledge and
                                                            -- resolve go to the same integration
    outcome      text NOT NULL DEFAULT 'sent' CHECK (outcome IN ('sent', 'not_paged')),
    reason       text,
    -- A retried or concurrent escalation task inserts the same row: the conflict means "already paged".
    CONSTRAINT incident_pages_once PRIMARY KEY (incident_id, role, step)
);

-- PagerDuty acknowledge/resolve sent for an incident's alert to one role (one dedup key per role): when the
-- incident is acknowledged (HITL in the Airflow UI, an operator) or resolved, every role that was paged hears it
-- once. Same at-most-once pattern as incident_pages.
CREATE TABLE incident_page_closures (
    incident_id  bigint NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    role         text NOT NULL,
    action       text NOT NULL CHECK (action IN ('acknowledge', 'resolve')),
    sent_at      timestamptz NOT NULL,
    CONSTRAINT incident_page_closures_once PRIMARY KEY (incident_id, role, action)
);

COMMENT ON TABLE incidents IS 'Incident records (issue 17): one open row per dedup key, severity only escalates.';
COMMENT ON TABLE incident_timeline IS 'Append-only history of each incident: alerts, pages, acks, actions, resolution.';
COMMENT ON TABLE oncall_roles IS 'The on-call roster as data; edited with the ops_edit_oncall_roster DAG (audited).';
COMMENT ON TABLE incident_pages IS 'Pages sent per (incident, role, ladder step): the insert is the at-most-once guard.';
