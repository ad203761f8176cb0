-- Which pack each advisor gets on a business date, and why (approved content or an evergreen fallback).
-- Written by the nightly window and re-checked by the pre-delivery check (same function).
CREATE TABLE pack_assignments (
    business_date  date NOT NULL,
    advisor_id     bigint NOT NULL REFERENCES advisors (advisor_id),
    pack_id        bigint NOT NULL REFERENCES content_packs (pack_id),
    render_id      bigint REFERENCES renders (render_id),
    source         text NOT NULL CHECK (source IN ('approved', 'fallback')),
    reason         text NOT NULL CHECK (length(btrim(reason)) > 0),
    assigned_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_date, advisor_id)
);
CREATE INDEX pack_assignments_pack_idx ON pack_assignments (pack_id, business_date);

-- Outcome of each pre-delivery / nightly check, so that later DAGs and operators can see it.
CREATE TABLE check_results (
    check_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    business_date  date NOT NULL,
    dag_id         text NOT NULL,
    run_id         text,
    check_name     text NOT NULL,
    severity       text NOT NULL CHECK (severity IN ('P0', 'P1', 'P2', 'info')),
    ok             boolean NOT NULL,
    summary        text NOT NULL,
    items          jsonb NOT NULL DEFAULT '[]'::jsonb,
    checked_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX check_results_lookup_idx ON check_results (business_date, check_name, checked_at DESC);

-- A retired number keeps its shard for history; only active primaries are unique per shard.
ALTER TABLE sending_numbers ADD COLUMN retired_reason text;

-- The one definition of who may be messaged: active, opted in, and not on the do-not-contact list.
-- (Phone validity is enforced by the advisors table's E.164 CHECK.)
CREATE VIEW eligible_advisors AS
SELECT a.*
FROM advisors a
WHERE a.active AND a.opted_in
  AND NOT EXISTS (SELECT 1 FROM do_not_contact d WHERE d.phone_e164 = a.phone_e164);
