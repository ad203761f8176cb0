-- The outcome of one email row: sent, failed (error kept, retried while attempts remain), superseded, cancelled.
UPDATE advisor_notice_emails
SET status = :status,
    attempts = attempts + :attempted,
    last_attempt_at = CASE WHEN :attempted > 0 THEN CAST(:now AS timestamptz) ELSE last_attempt_at END,
    last_error = coalesce(:error, last_error),
    sent_at = CASE WHEN :status = 'sent' THEN CAST(:now AS timestamptz) END
WHERE email_id = :email_id
