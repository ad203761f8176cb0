-- The approved daily packs of a date (not the evergreen fallbacks) whose text the AI compliance review reads,
-- with how many renders were made of each that night.
SELECT p.pack_id, p.pack_key, p.title, p.body, p.disclaimer,
       (SELECT count(*) FROM renders r WHERE r.business_date = :business_date AND r.pack_id = p.pack_id) AS renders
FROM content_packs p
WHERE p.business_date = :business_date AND p.status = 'approved' AND NOT p.is_evergreen_fallback
ORDER BY p.pack_id
