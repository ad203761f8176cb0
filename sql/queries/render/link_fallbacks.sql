-- Fallback assignments point at their QC-passed render, so the plan and the sender use it.
UPDATE pack_assignments x SET render_id = r.render_id
FROM renders r
WHERE x.business_date = :business_date AND x.source = 'fallback'
  AND r.business_date = x.business_date AND r.advisor_id = x.advisor_id AND r.pack_id = x.pack_id
  AND r.qc_status = 'passed' AND x.render_id IS DISTINCT FROM r.render_id
