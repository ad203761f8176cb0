-- Approve a date's pending packs up to a risk level in one statement; returns what was approved. With :pack_ids
-- (the 21:30 offer) only those packs: one submitted after the offer was not shown to the approvers.
UPDATE content_packs
SET status = 'approved', approved_by = :actor, approved_at = now()
WHERE business_date = :business_date AND status = 'pending' AND NOT is_evergreen_fallback
  AND risk_level <= CAST(:max_risk AS smallint)
  AND (CAST(:pack_ids AS bigint[]) IS NULL OR pack_id = ANY(CAST(:pack_ids AS bigint[])))
RETURNING pack_id, pack_key, risk_level
