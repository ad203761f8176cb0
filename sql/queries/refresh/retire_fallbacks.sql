-- Retire evergreen packs that are too old or overused; returns what was retired and why.
WITH uses AS (
    SELECT pack_id, count(*) AS n FROM pack_assignments WHERE source = 'fallback' GROUP BY pack_id
)
UPDATE content_packs c SET retired_at = now(),
    retired_reason = CASE WHEN c.created_at < now() - make_interval(months => CAST(:max_age_months AS int))
                          THEN 'older than ' || CAST(:max_age_months AS text) || ' months'
                          ELSE 'used ' || u.n || ' times (limit ' || CAST(:max_uses AS text) || ')' END
FROM content_packs c2 LEFT JOIN uses u ON u.pack_id = c2.pack_id
WHERE c.pack_id = c2.pack_id AND c.is_evergreen_fallback AND c.retired_at IS NULL
  AND (c.created_at < now() - make_interval(months => CAST(:max_age_months AS int))
       OR coalesce(u.n, 0) > CAST(:max_uses AS int))
RETURNING c.pack_key, c.retired_reason
