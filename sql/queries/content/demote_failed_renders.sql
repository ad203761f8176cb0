-- Assignments whose content cannot be delivered lose it, so that the fallback step gives those
-- advisors an evergreen pack instead: approved ones whose render is missing or did not pass QC, and
-- fallbacks whose render failed QC (the next fallback avoids that pack). Returns the advisors affected.
DELETE FROM pack_assignments x
USING (SELECT x2.advisor_id
       FROM pack_assignments x2
       LEFT JOIN renders r ON r.render_id = x2.render_id
       LEFT JOIN renders rf ON rf.business_date = x2.business_date AND rf.advisor_id = x2.advisor_id
                           AND rf.pack_id = x2.pack_id AND x2.source = 'fallback'
       WHERE x2.business_date = :business_date
         AND ((x2.source = 'approved' AND (r.render_id IS NULL OR r.qc_status <> 'passed'))
              OR (x2.source = 'fallback' AND rf.qc_status = 'failed'))) bad
WHERE x.business_date = :business_date AND x.advisor_id = bad.advisor_id
RETURNING x.advisor_id
