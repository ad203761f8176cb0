SELECT count(*) FROM content_packs
WHERE is_evergreen_fallback AND status = 'approved' AND retired_at IS NULL AND length(btrim(disclaimer)) > 0
