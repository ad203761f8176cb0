-- Claim the next due rows of one unit (a shard's segment groups). Two sources:
-- * requeued rows (claimed before and back in the queue: retries, refunds, reconciliation), through a
--   small partial index, soonest retry first;
-- * first attempts, per segment group in send order, after the sender's keyset cursor
--   (:after_jitter, :after_advisor per group) in (jitter, advisor) order through the unit index, so a
--   claim never rescans rows already sent.
-- SKIP LOCKED lets concurrent senders (or a duplicate run) never claim the same row.
WITH requeued AS (
    SELECT d.delivery_id
    FROM deliveries d
    JOIN delivery_plan p ON p.business_date = d.business_date AND p.advisor_id = d.advisor_id
    WHERE d.business_date = :business_date AND d.status = 'queued' AND d.sending_at IS NOT NULL
      AND p.shard = :shard AND p.segment = ANY(CAST(:segments AS text[])) AND p.jitter_ms <= :elapsed_ms
      AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= now())
    ORDER BY d.next_attempt_at NULLS FIRST, d.delivery_id
    LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED
), fresh AS (
    SELECT x.delivery_id
    FROM unnest(CAST(:segments AS text[]), CAST(:after_jitter AS int[]), CAST(:after_advisor AS bigint[]))
         WITH ORDINALITY AS g(segment, after_jitter, after_advisor, ord)
    CROSS JOIN LATERAL (
        SELECT d.delivery_id
        FROM delivery_plan p
        JOIN deliveries d ON d.business_date = p.business_date AND d.advisor_id = p.advisor_id
        WHERE p.business_date = :business_date AND p.shard = :shard AND p.segment = g.segment
          AND (p.jitter_ms, p.advisor_id) > (g.after_jitter, g.after_advisor) AND p.jitter_ms <= :elapsed_ms
          AND d.status = 'queued' AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= now())
        ORDER BY p.jitter_ms, p.advisor_id
        LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED
    ) x
    LIMIT :limit
), next AS (
    SELECT delivery_id FROM requeued
    UNION ALL
    SELECT delivery_id FROM fresh
    LIMIT :limit
)
UPDATE deliveries d
SET status = 'sending', attempts = d.attempts + 1, sending_at = now(), phone_number_id = :phone_number_id,
    template_name = p.template_name, pack_id = p.pack_id, to_phone = a.phone_e164, updated_at = now()
FROM next, delivery_plan p, advisors a, content_packs c
WHERE d.delivery_id = next.delivery_id
  AND p.business_date = d.business_date AND p.advisor_id = d.advisor_id
  AND a.advisor_id = d.advisor_id AND c.pack_id = p.pack_id
RETURNING d.delivery_id, d.idempotency_key, d.advisor_id, d.attempts, a.phone_e164, a.name,
          NOT (a.active AND a.opted_in) AS opted_out,
          EXISTS (SELECT 1 FROM do_not_contact x WHERE x.phone_e164 = a.phone_e164) AS dnc,
          p.template_name, p.template_language, c.pack_key, c.title, c.disclaimer,
          (SELECT r.storage_uri FROM renders r WHERE r.render_id = p.render_id) AS render_uri,
          p.segment, p.jitter_ms
