-- Approve a date's pending packs up to a risk level in one statement; returns what was approved.
UPDATE content_packs
SET status = 'approved', approved_by = :actor, approved_at = now()
WHERE business_date = :business_date AND status = 'pending' AND NOT is_evergreen_fallback
  AND risk_level <= CAST(:max_risk AS smallint)
RETURNING pack_id, pack_key, risk_level
