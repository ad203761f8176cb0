-- Emails of a date still to send (new, or failed with attempts left), oldest first, with whether a newer notice
-- of the same advisor exists (then this one is superseded, not sent late).
SELECT e.email_id, e.advisor_id, e.seq, e.to_address, e.subject, e.body, e.message_id, e.attempts,
       EXISTS (SELECT 1 FROM advisor_notice_outbox o
               WHERE o.business_date = e.business_date AND o.advisor_id = e.advisor_id AND o.seq > e.seq) AS superseded
FROM advisor_notice_emails e
WHERE e.business_date = :business_date AND e.status IN ('pending', 'failed') AND e.attempts < :max_attempts
ORDER BY e.email_id
