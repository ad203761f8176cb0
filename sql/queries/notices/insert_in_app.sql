-- The in-app notices of one run. A (date, advisor, seq) that exists already (a retried or overlapping run) is
-- skipped; RETURNING lists only the notices this statement created, so only those get an email row.
INSERT INTO advisor_notice_outbox (business_date, advisor_id, segment, seq, incident_id, eta_at, eta_basis,
                                   next_update_at, title, body, created_at)
SELECT CAST(:business_date AS date), u.advisor_id, u.segment, u.seq, CAST(:incident_id AS bigint),
       CAST(:eta_at AS timestamptz), :eta_basis, CAST(:next_update_at AS timestamptz), :title, u.body,
       CAST(:now AS timestamptz)
FROM unnest(CAST(:advisor_ids AS bigint[]), CAST(:segments AS text[]), CAST(:seqs AS integer[]),
            CAST(:bodies AS text[])) AS u(advisor_id, segment, seq, body)
ON CONFLICT ON CONSTRAINT advisor_notice_outbox_once DO NOTHING
RETURNING notice_id, advisor_id, seq
