-- The latest finished canary run of a date (what the pre-delivery check looks at).
SELECT canary_run_id, status, summary, recipients, delivered, failed, finished_at
FROM canary_runs WHERE business_date = :business_date AND status <> 'running'
ORDER BY started_at DESC LIMIT 1
