-- Claim the next queued canary messages of one run and shard (same row shape as fanout/claim).
WITH next AS (
    SELECT c.delivery_id
    FROM canary_sends c
    WHERE c.canary_run_id = :canary_run_id AND c.shard = :shard AND c.status = 'queued'
      AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= now())
    ORDER BY c.delivery_id
    LIMIT :limit
    FOR UPDATE OF c SKIP LOCKED
)
UPDATE canary_sends c
SET status = 'sending', attempts = c.attempts + 1, sending_at = now(), phone_number_id = :phone_number_id,
    updated_at = now()
FROM next, advisors a, content_packs p, renders r
WHERE c.delivery_id = next.delivery_id
  AND a.advisor_id = c.sample_advisor_id AND p.pack_id = c.pack_id AND r.render_id = c.render_id
RETURNING c.delivery_id, c.idempotency_key, c.sample_advisor_id AS advisor_id, c.attempts,
          c.to_phone AS phone_e164, a.name, false AS opted_out,
          EXISTS (SELECT 1 FROM do_not_contact x WHERE x.phone_e164 = c.to_phone) AS dnc,
          c.template_name, c.template_language, p.pack_key, p.title, p.disclaimer, r.storage_uri AS render_uri
