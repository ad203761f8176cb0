-- Give every eligible advisor the most specific approved pack of the date whose render passed QC
-- (advisor scope beats segment scope beats everyone). Fallback assignments are upgraded when
-- approved content appears; approved ones are refreshed if their render changed.
WITH eligible AS (
    SELECT advisor_id, segment FROM eligible_advisors
), candidate AS (
    SELECT DISTINCT ON (e.advisor_id) e.advisor_id, p.pack_id, r.render_id,
           CASE p.scope WHEN 'advisor' THEN 'approved advisor pack'
                        WHEN 'segment' THEN 'approved ' || p.segment || ' pack'
                        ELSE 'approved pack for all' END AS reason
    FROM eligible e
    JOIN content_packs p
      ON p.business_date = :business_date AND p.status = 'approved' AND NOT p.is_evergreen_fallback
     AND (p.scope = 'all' OR (p.scope = 'segment' AND p.segment = e.segment)
          OR (p.scope = 'advisor' AND p.advisor_id = e.advisor_id))
    JOIN renders r
      ON r.business_date = :business_date AND r.advisor_id = e.advisor_id AND r.pack_id = p.pack_id
     AND r.qc_status = 'passed'
    ORDER BY e.advisor_id, CASE p.scope WHEN 'advisor' THEN 0 WHEN 'segment' THEN 1 ELSE 2 END, p.pack_id
)
INSERT INTO pack_assignments (business_date, advisor_id, pack_id, render_id, source, reason)
SELECT :business_date, advisor_id, pack_id, render_id, 'approved', reason FROM candidate
ON CONFLICT (business_date, advisor_id) DO UPDATE
SET pack_id = EXCLUDED.pack_id, render_id = EXCLUDED.render_id, source = 'approved', reason = EXCLUDED.reason,
    assigned_at = now()
WHERE (pack_assignments.pack_id, pack_assignments.render_id, pack_assignments.source)
      IS DISTINCT FROM (EXCLUDED.pack_id, EXCLUDED.render_id, 'approved')
