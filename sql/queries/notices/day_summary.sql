-- The day's notices for the status page: in-app notices, emails by status, the latest notice time.
SELECT (SELECT count(*) FROM advisor_notice_outbox WHERE business_date = :business_date) AS in_app,
       (SELECT count(DISTINCT advisor_id) FROM advisor_notice_outbox WHERE business_date = :business_date) AS advisors,
       (SELECT max(created_at) FROM advisor_notice_outbox WHERE business_date = :business_date) AS last_notice_at,
       (SELECT count(*) FILTER (WHERE status = 'sent') FROM advisor_notice_emails WHERE business_date = :business_date)
           AS emails_sent,
       (SELECT count(*) FILTER (WHERE status IN ('pending', 'failed'))
        FROM advisor_notice_emails WHERE business_date = :business_date) AS emails_unsent
