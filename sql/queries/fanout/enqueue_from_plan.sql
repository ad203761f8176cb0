-- Turn the date's plan into queued deliveries (the work queue). Idempotent: a (date, advisor)
-- that already has a delivery, whatever its state, is left alone, and so is one whose delivery
-- retention archived and deleted (its key is kept in sent_keys): an archived date is never resent.
INSERT INTO deliveries (idempotency_key, business_date, advisor_id, phone_number_id, to_phone, template_name,
                        pack_id, status)
SELECT CAST(p.business_date AS text) || ':' || p.advisor_id, p.business_date, p.advisor_id, p.phone_number_id,
       a.phone_e164, p.template_name, p.pack_id, 'queued'
FROM delivery_plan p
JOIN advisors a ON a.advisor_id = p.advisor_id
WHERE p.business_date = :business_date
  AND NOT EXISTS (SELECT 1 FROM sent_keys s WHERE s.business_date = p.business_date AND s.advisor_id = p.advisor_id)
ON CONFLICT (business_date, advisor_id) DO NOTHING
