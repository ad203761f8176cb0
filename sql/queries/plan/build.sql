-- Build (or rebuild) the delivery plan of a business date in one set-based statement.
-- * one row per eligible advisor that has content assigned;
-- * shards round-robin over the active primary numbers in advisor_id order: balanced to +/-1 row
--   and stable for the same advisor set;
-- * jitter: a per-(advisor, date) hash spread over :window_ms;
-- * rows that already have a delivery (queued or beyond) are left untouched.
WITH numbers AS (
    SELECT phone_number_id, shard,
           row_number() OVER (ORDER BY shard) - 1 AS slot,
           count(*) OVER () AS n
    FROM sending_numbers
    WHERE role = 'primary' AND active
      -- a cooldown cover serves an overflow shard only (include/delivery/cooldown_store.py apply_to_plan)
      AND NOT EXISTS (SELECT 1 FROM number_ramps r WHERE r.cover_number = sending_numbers.phone_number_id AND r.ended_at IS NULL)
), ranked AS (
    SELECT a.advisor_id, a.segment, a.language, x.pack_id, x.render_id, x.source,
           row_number() OVER (ORDER BY a.advisor_id) - 1 AS rn
    FROM eligible_advisors a
    JOIN pack_assignments x ON x.business_date = :business_date AND x.advisor_id = a.advisor_id
), planned AS (
    SELECT r.advisor_id, r.segment, r.pack_id, r.render_id, r.source,
           CASE WHEN CAST(:templates AS jsonb) ? r.language THEN r.language ELSE :default_language END
               AS template_language,
           n.phone_number_id, n.shard,
           (('x' || substr(md5(r.advisor_id::text || ':' || CAST(:business_date AS text)), 1, 8))::bit(32)::bigint
               % CAST(:window_ms AS bigint))::int AS jitter_ms
    FROM ranked r
    JOIN numbers n ON n.slot = r.rn % n.n
)
INSERT INTO delivery_plan (business_date, advisor_id, segment, pack_id, render_id, content_source, template_name,
                           template_language, phone_number_id, shard, jitter_ms, planned_at)
SELECT :business_date, p.advisor_id, p.segment, p.pack_id, p.render_id, p.source,
       CAST(:templates AS jsonb) ->> p.template_language, p.template_language,
       p.phone_number_id, p.shard, p.jitter_ms, now()
FROM planned p
ON CONFLICT (business_date, advisor_id) DO UPDATE
SET segment = EXCLUDED.segment, pack_id = EXCLUDED.pack_id, render_id = EXCLUDED.render_id,
    content_source = EXCLUDED.content_source, template_name = EXCLUDED.template_name,
    template_language = EXCLUDED.template_language, phone_number_id = EXCLUDED.phone_number_id,
    shard = EXCLUDED.shard, jitter_ms = EXCLUDED.jitter_ms, planned_at = now()
WHERE NOT EXISTS (SELECT 1 FROM deliveries d
                  WHERE d.business_date = delivery_plan.business_date AND d.advisor_id = delivery_plan.advisor_id)
  AND (delivery_plan.segment, delivery_plan.pack_id, delivery_plan.render_id, delivery_plan.content_source,
       delivery_plan.template_name, delivery_plan.template_language, delivery_plan.phone_number_id,
       delivery_plan.shard, delivery_plan.jitter_ms)
      IS DISTINCT FROM
      (EXCLUDED.segment, EXCLUDED.pack_id, EXCLUDED.render_id, EXCLUDED.content_source, EXCLUDED.template_name,
       EXCLUDED.template_language, EXCLUDED.phone_number_id, EXCLUDED.shard, EXCLUDED.jitter_ms)
