-- Plan rows of advisors who are no longer eligible (DNC, opted out, inactive) or have no content,
-- and that have no delivery yet, are removed on rebuild.
DELETE FROM delivery_plan p
WHERE p.business_date = :business_date
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.business_date = p.business_date AND d.advisor_id = p.advisor_id)
  AND (NOT EXISTS (SELECT 1 FROM eligible_advisors a WHERE a.advisor_id = p.advisor_id)
       OR NOT EXISTS (SELECT 1 FROM pack_assignments x
                      WHERE x.business_date = p.business_date AND x.advisor_id = p.advisor_id))
