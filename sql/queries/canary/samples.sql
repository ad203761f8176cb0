-- One real advisor render per (segment, content source) of the date: what the canary list receives.
-- Only QC-passed renders that an assignment actually uses are sampled.
SELECT DISTINCT ON (a.segment, x.source)
       a.segment, x.source, x.advisor_id, a.language, r.render_id, r.pack_id
FROM pack_assignments x
JOIN advisors a ON a.advisor_id = x.advisor_id
JOIN renders r ON r.render_id = x.render_id AND r.qc_status = 'passed'
JOIN segments s ON s.code = a.segment
WHERE x.business_date = :business_date
ORDER BY a.segment, x.source, x.advisor_id
