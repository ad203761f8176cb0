-- Renders still to make for one batch of advisors (advisor_id modulo :batch_count) on a date.
-- :mode 'approved' targets each eligible advisor's most specific approved pack; 'fallback' targets
-- the evergreen pack assigned to advisors without approved content. The input hash covers everything
-- that changes the image, so a target whose render already exists with the same hash is not returned
-- (an unchanged rerun returns nothing). `reuse_*` points at an identical render made on another date.
WITH e AS (
    SELECT advisor_id, segment, name, registration_no, phone_e164, contact_email
    FROM eligible_advisors
    WHERE advisor_id % CAST(:batch_count AS int) = CAST(:batch AS int)
), target AS (
    (SELECT DISTINCT ON (e.advisor_id) e.*, p.pack_id
     FROM e
     JOIN content_packs p
       ON p.business_date = :business_date AND p.status = 'approved' AND NOT p.is_evergreen_fallback
      AND (p.scope = 'all' OR (p.scope = 'segment' AND p.segment = e.segment)
           OR (p.scope = 'advisor' AND p.advisor_id = e.advisor_id))
     WHERE CAST(:mode AS text) = 'approved'
     ORDER BY e.advisor_id, CASE p.scope WHEN 'advisor' THEN 0 WHEN 'segment' THEN 1 ELSE 2 END, p.pack_id)
    UNION ALL
    SELECT e.*, x.pack_id
    FROM e
    JOIN pack_assignments x ON x.business_date = :business_date AND x.advisor_id = e.advisor_id
     AND x.source = 'fallback'
    WHERE CAST(:mode AS text) = 'fallback'
), hashed AS (
    SELECT t.advisor_id, t.name, t.registration_no, t.phone_e164, t.contact_email, t.pack_id,
           p.pack_key, p.title, p.body, p.disclaimer, p.artwork,
           encode(sha256(convert_to(concat_ws(chr(31), CAST(:renderer AS text), p.title, p.body, p.disclaimer,
                                              p.artwork, t.name, t.registration_no, t.phone_e164,
                                              coalesce(t.contact_email, '')), 'UTF8')), 'hex') AS input_sha256
    FROM target t
    JOIN content_packs p ON p.pack_id = t.pack_id
)
SELECT h.*, prior.render_id AS reuse_render_id, prior.storage_uri AS reuse_storage_uri
FROM hashed h
LEFT JOIN renders r ON r.business_date = :business_date AND r.advisor_id = h.advisor_id AND r.pack_id = h.pack_id
LEFT JOIN LATERAL (
    SELECT r2.render_id, r2.storage_uri FROM renders r2
    WHERE r2.input_sha256 = h.input_sha256 AND r2.qc_status <> 'pending'
    ORDER BY r2.render_id DESC LIMIT 1
) prior ON true
WHERE r.render_id IS NULL OR r.input_sha256 <> h.input_sha256 OR r.qc_status = 'pending'
ORDER BY h.pack_id, h.advisor_id
