-- Advisors of the given (late) segments whose message is still unsent, with whether they may be contacted now
-- (active, opted in, not on the do-not-contact list) and their latest delay notice of the day.
SELECT p.advisor_id, p.segment, a.name, a.contact_email,
       (a.active AND a.opted_in AND dnc.phone_e164 IS NULL) AS contactable,
       coalesce(d.status, 'not_queued') AS delivery_status,
       last.seq AS last_seq, last.created_at AS last_notice_at
FROM delivery_plan p
JOIN advisors a ON a.advisor_id = p.advisor_id
LEFT JOIN deliveries d ON d.business_date = p.business_date AND d.advisor_id = p.advisor_id
LEFT JOIN do_not_contact dnc ON dnc.phone_e164 = a.phone_e164
LEFT JOIN LATERAL (
    SELECT o.seq, o.created_at FROM advisor_notice_outbox o
    WHERE o.business_date = p.business_date AND o.advisor_id = p.advisor_id
    ORDER BY o.seq DESC LIMIT 1) last ON true
WHERE p.business_date = :business_date
  AND p.segment = ANY(CAST(:segments AS text[]))
  AND (d.status IS NULL OR d.status IN ('queued', 'sending', 'unknown'))
ORDER BY p.advisor_id
