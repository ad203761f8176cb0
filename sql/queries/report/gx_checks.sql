-- Per planned-or-delivered advisor of the date: the facts the data-quality expectations check.
WITH plan AS (
    SELECT advisor_id FROM delivery_plan WHERE business_date = :business_date
), outs AS (
    SELECT advisor_id, count(*) AS outcome_rows FROM deliveries WHERE business_date = :business_date GROUP BY 1
), sends AS (
    SELECT advisor_id, count(*) FILTER (WHERE outcome = 'accepted') AS accepted_sends
    FROM delivery_attempts WHERE business_date = :business_date GROUP BY 1
)
SELECT coalesce(p.advisor_id, d.advisor_id) AS advisor_id,
       (p.advisor_id IS NOT NULL) AS planned,
       coalesce(o.outcome_rows, 0) AS outcome_rows,
       coalesce(s.accepted_sends, 0) AS accepted_sends,
       d.status, d.wamid, d.error_code, d.skip_reason, d.accepted_at, d.delivered_at, d.read_at,
       extract(epoch FROM d.delivered_at - d.accepted_at) AS accepted_to_delivered_s,
       extract(epoch FROM d.read_at - d.delivered_at) AS delivered_to_read_s,
       (d.wamid IS NOT NULL AND (dnc.phone_e164 IS NOT NULL OR (NOT a.opted_in AND a.updated_at <= d.accepted_at)))
           AS sent_to_dnc_or_opted_out,
       dnc.source AS dnc_source
FROM plan p
FULL JOIN (SELECT * FROM deliveries WHERE business_date = :business_date) d ON d.advisor_id = p.advisor_id
LEFT JOIN outs o ON o.advisor_id = coalesce(p.advisor_id, d.advisor_id)
LEFT JOIN sends s ON s.advisor_id = coalesce(p.advisor_id, d.advisor_id)
LEFT JOIN advisors a ON a.advisor_id = coalesce(p.advisor_id, d.advisor_id)
-- DNC only counts if it was on the list before the message was accepted (a STOP reply afterwards is fine).
LEFT JOIN do_not_contact dnc ON dnc.phone_e164 = d.to_phone AND dnc.added_at <= d.accepted_at
