-- A render fails QC with the merged findings (rules and AI); content assignment then gives its advisor a fallback.
UPDATE renders SET qc_status = 'failed', qc_reasons = CAST(:qc_reasons AS jsonb)
WHERE render_id = :render_id
