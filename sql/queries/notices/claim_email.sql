-- Lock one email row for sending; an overlapping run sending it right now holds the lock (skipped here).
SELECT email_id, status FROM advisor_notice_emails
WHERE email_id = :email_id AND status IN ('pending', 'failed')
FOR UPDATE SKIP LOCKED
