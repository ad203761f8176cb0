-- Which existing advisor owns each staged phone, to reject a phone that belongs to another advisor.
SELECT s.external_ref, a.external_ref AS owner_ref, s.phone_e164
FROM advisor_import_staging s
JOIN advisors a ON a.phone_e164 = s.phone_e164 AND a.external_ref <> s.external_ref
