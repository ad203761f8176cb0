-- The 05:50 check results of a date: the latest result of each check (a re-run replaces what it shows).
SELECT DISTINCT ON (check_name) check_name, severity, ok, summary, items, run_id, checked_at
FROM check_results
WHERE business_date = :business_date AND dag_id = 'pre_delivery_check'
ORDER BY check_name, checked_at DESC
