-- Every eligible advisor without an assignment gets an evergreen fallback pack. The choice rotates:
-- never a pack the advisor received in the last :rotation_days days (when enough packs exist),
-- and otherwise deterministic per (advisor, date) so a rerun picks the same one. A pack whose render
-- for this advisor and date failed QC is never chosen again.
WITH eligible AS (
    SELECT a.advisor_id, a.segment
    FROM eligible_advisors a
    WHERE NOT EXISTS (SELECT 1 FROM pack_assignments x
                      WHERE x.business_date = :business_date AND x.advisor_id = a.advisor_id)
), library AS (
    SELECT pack_id FROM content_packs
    WHERE is_evergreen_fallback AND status = 'approved' AND retired_at IS NULL
      AND length(btrim(disclaimer)) > 0
), recent AS (
    SELECT advisor_id, pack_id FROM pack_assignments
    WHERE source = 'fallback' AND business_date >= CAST(:business_date AS date) - CAST(:rotation_days AS int)
      AND business_date < :business_date
), ranked AS (
    SELECT e.advisor_id, l.pack_id,
           row_number() OVER (PARTITION BY e.advisor_id
                              ORDER BY (r.pack_id IS NOT NULL), md5(e.advisor_id::text || ':' || l.pack_id::text
                                                                    || ':' || CAST(:business_date AS text))) AS rn,
           (r.pack_id IS NOT NULL) AS repeat
    FROM eligible e
    CROSS JOIN library l
    LEFT JOIN recent r ON r.advisor_id = e.advisor_id AND r.pack_id = l.pack_id
    WHERE NOT EXISTS (SELECT 1 FROM renders f WHERE f.business_date = :business_date AND f.qc_status = 'failed'
                      AND f.advisor_id = e.advisor_id AND f.pack_id = l.pack_id)
)
INSERT INTO pack_assignments (business_date, advisor_id, pack_id, render_id, source, reason)
SELECT :business_date, advisor_id, pack_id, NULL, 'fallback',
       CASE WHEN repeat THEN :reason || ' (library too small to avoid a repeat within '
                            || CAST(:rotation_days AS text) || ' days)'
            ELSE :reason END
FROM ranked WHERE rn = 1
ON CONFLICT (business_date, advisor_id) DO NOTHING
