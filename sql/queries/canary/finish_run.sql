UPDATE canary_runs c SET
    status = :status, summary = :summary, details = CAST(:details AS jsonb), finished_at = now(),
    recipients = s.recipients, accepted = s.accepted, delivered = s.delivered, failed = s.failed
FROM (SELECT count(*) AS recipients,
             count(*) FILTER (WHERE status IN ('accepted', 'sent', 'delivered', 'read')) AS accepted,
             count(*) FILTER (WHERE status IN ('delivered', 'read')) AS delivered,
             count(*) FILTER (WHERE status IN ('failed', 'skipped')) AS failed
      FROM canary_sends WHERE canary_run_id = :canary_run_id) s
WHERE c.canary_run_id = :canary_run_id
RETURNING c.recipients, c.accepted, c.delivered, c.failed
