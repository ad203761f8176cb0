-- The email rows of the in-app notices just created (same transaction), status pending: sent after commit.
INSERT INTO advisor_notice_emails (notice_id, business_date, advisor_id, segment, seq, incident_id, to_address,
                                   subject, body, eta_at, eta_basis, message_id, created_at)
SELECT o.notice_id, o.business_date, o.advisor_id, o.segment, o.seq, o.incident_id, u.to_address, :subject, u.body,
       o.eta_at, o.eta_basis, u.message_id, o.created_at
FROM unnest(CAST(:notice_ids AS bigint[]), CAST(:to_addresses AS text[]), CAST(:bodies AS text[]),
            CAST(:message_ids AS text[])) AS u(notice_id, to_address, body, message_id)
JOIN advisor_notice_outbox o ON o.notice_id = u.notice_id
ON CONFLICT DO NOTHING
