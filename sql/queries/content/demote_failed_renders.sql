-- Approved assignments whose render is missing or did not pass QC lose their content, so that the
-- fallback step gives those advisors an evergreen pack instead. Returns the advisors affected.
DELETE FROM pack_assignments x
USING (SELECT x2.advisor_id
       FROM pack_assignments x2
       LEFT JOIN renders r ON r.render_id = x2.render_id
       WHERE x2.business_date = :business_date AND x2.source = 'approved'
         AND (r.render_id IS NULL OR r.qc_status <> 'passed')) bad
WHERE x.business_date = :business_date AND x.advisor_id = bad.advisor_id
RETURNING x.advisor_id
