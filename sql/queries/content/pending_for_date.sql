-- Packs for the business date still waiting for compliance approval, oldest first.
SELECT pack_id, pack_key, scope, segment, advisor_id, title, risk_level, submitted_at
FROM content_packs
WHERE business_date = :business_date AND status = 'pending' AND NOT is_evergreen_fallback
ORDER BY submitted_at, pack_id
