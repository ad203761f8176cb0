-- Approve exactly the packs offered to the approvers (still pending, up to the risk level they chose): a pack
-- submitted after the offer was not shown to them and is not approved by their answer.
UPDATE content_packs
SET status = 'approved', approved_by = :actor, approved_at = now()
WHERE business_date = :business_date AND status = 'pending' AND NOT is_evergreen_fallback
  AND pack_id = ANY(CAST(:pack_ids AS bigint[])) AND risk_level <= CAST(:max_risk AS smallint)
RETURNING pack_id, pack_key, risk_level
