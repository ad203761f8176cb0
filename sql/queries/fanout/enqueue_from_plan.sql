-- Turn the date's plan into queued deliveries (the work queue). Idempotent: a (date, advisor)
-- that already has a delivery, whatever its state, is left alone.
INSERT INTO deliveries (idempotency_key, business_date, advisor_id, phone_number_id, to_phone, template_name,
                        pack_id, status)
SELECT CAST(p.business_date AS text) || ':' || p.advisor_id, p.business_date, p.advisor_id, p.phone_number_id,
       a.phone_e164, p.template_name, p.pack_id, 'queued'
FROM delivery_plan p
JOIN advisors a ON a.advisor_id = p.advisor_id
WHERE p.business_date = :business_date
ON CONFLICT (business_date, advisor_id) DO NOTHING
