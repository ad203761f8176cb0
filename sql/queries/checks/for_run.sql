-- The latest result of each check a run recorded (a retried task records again; the last word counts).
SELECT DISTINCT ON (check_name) check_name, severity, ok, summary
FROM check_results
WHERE run_id = :run_id
ORDER BY check_name, checked_at DESC
