-- The date's check findings (every check that was not ok, any DAG), worst first.
SELECT dag_id, run_id, check_name, severity, summary, checked_at
FROM check_results
WHERE business_date = :business_date AND NOT ok
ORDER BY CASE severity WHEN 'P0' THEN 0 WHEN 'P1' THEN 1 WHEN 'P2' THEN 2 ELSE 3 END, checked_at DESC
LIMIT 200
