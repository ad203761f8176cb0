-- The content review of a number whose quality dropped: every pack sent on it in the :days days up to :until (the
-- drop's business date), with how it went and the QC findings of the renders sent (renders.qc_reasons, written by
-- the render-QC rules engine, include/content/render_qc.py) - one row per (business date, pack).
WITH sent AS (
    SELECT d.business_date, d.advisor_id, d.pack_id, d.status, p.render_id, a.phone_e164
    FROM deliveries d
    JOIN advisors a ON a.advisor_id = d.advisor_id
    LEFT JOIN delivery_plan p ON p.business_date = d.business_date AND p.advisor_id = d.advisor_id
    WHERE d.phone_number_id = :n AND d.business_date > CAST(:until AS date) - CAST(:days AS int)
      AND d.business_date <= :until AND d.wamid IS NOT NULL
), per_pack AS (
    SELECT s.business_date, s.pack_id, count(*) AS messages,
           count(*) FILTER (WHERE s.status IN ('delivered', 'read')) AS delivered,
           count(*) FILTER (WHERE s.status = 'read') AS read,
           count(*) FILTER (WHERE s.status = 'failed') AS failed,
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM do_not_contact x WHERE x.phone_e164 = s.phone_e164))
               AS opted_out,
           count(*) FILTER (WHERE r.qc_status IS DISTINCT FROM 'passed') AS renders_not_passed
    FROM sent s LEFT JOIN renders r ON r.render_id = s.render_id
    GROUP BY s.business_date, s.pack_id
), findings AS (
    SELECT s.business_date, s.pack_id, jsonb_agg(DISTINCT f.reason) AS qc_reasons
    FROM sent s
    JOIN renders r ON r.render_id = s.render_id
    CROSS JOIN LATERAL jsonb_array_elements(r.qc_reasons) AS f(reason)
    GROUP BY s.business_date, s.pack_id
)
SELECT p.business_date, c.pack_id, c.pack_key, c.title, c.body, c.disclaimer, c.status AS pack_status,
       c.is_evergreen_fallback, c.approved_by, c.risk_level, p.messages, p.delivered, p.read, p.failed,
       p.opted_out, p.renders_not_passed, coalesce(f.qc_reasons, '[]'::jsonb) AS qc_reasons
FROM per_pack p
JOIN content_packs c ON c.pack_id = p.pack_id
LEFT JOIN findings f ON f.business_date = p.business_date AND f.pack_id = p.pack_id
ORDER BY p.business_date, c.pack_key
