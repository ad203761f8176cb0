-- An operator's decision on a date's sends of unknown outcome (no status webhook ever settled them):
-- 'resend' puts them back in the queue (accepting the risk that WhatsApp did accept them), 'mark_failed'
-- closes them as failed without sending. Only rows still unknown, or 'sending' long after any request, change.
UPDATE deliveries d SET
    status = CASE CAST(:decision AS text) WHEN 'resend' THEN 'queued' ELSE 'failed' END,
    -- 0: no WhatsApp error code (as for a failed status webhook without details)
    error_code = CASE CAST(:decision AS text) WHEN 'resend' THEN NULL ELSE 0 END,
    error_title = CASE CAST(:decision AS text) WHEN 'resend' THEN NULL
                       ELSE 'outcome unknown; closed without resending by an operator' END,
    failed_at = CASE CAST(:decision AS text) WHEN 'resend' THEN NULL ELSE now() END,
    next_attempt_at = NULL,
    updated_at = now()
WHERE d.business_date = :business_date
  AND (d.status = 'unknown' OR (d.status = 'sending' AND d.sending_at < now() - make_interval(secs => :stale_s)))
RETURNING d.advisor_id
