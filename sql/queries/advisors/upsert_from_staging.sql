-- Upsert staged advisor rows (temp table advisor_import_staging) by external_ref.
INSERT INTO advisors (external_ref, name, phone_e164, segment, language, registration_no, contact_email,
                      opted_in, consent_at, active)
SELECT external_ref, name, phone_e164, segment, language, registration_no, contact_email,
       opted_in, consent_at, active
FROM advisor_import_staging
ON CONFLICT (external_ref) DO UPDATE SET
    name = EXCLUDED.name,
    phone_e164 = EXCLUDED.phone_e164,
    segment = EXCLUDED.segment,
    language = EXCLUDED.language,
    registration_no = EXCLUDED.registration_no,
    contact_email = EXCLUDED.contact_email,
    opted_in = EXCLUDED.opted_in,
    consent_at = EXCLUDED.consent_at,
    active = EXCLUDED.active,
    updated_at = now()
WHERE (advisors.name, advisors.phone_e164, advisors.segment, advisors.language, advisors.registration_no,
       advisors.contact_email, advisors.opted_in, advisors.consent_at, advisors.active)
      IS DISTINCT FROM
      (EXCLUDED.name, EXCLUDED.phone_e164, EXCLUDED.segment, EXCLUDED.language, EXCLUDED.registration_no,
       EXCLUDED.contact_email, EXCLUDED.opted_in, EXCLUDED.consent_at, EXCLUDED.active)
