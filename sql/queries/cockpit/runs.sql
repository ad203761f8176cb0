-- Every run that recorded check results for the date: its worst severity and the worst check's summary.
SELECT dag_id, run_id,
       (array_agg(severity ORDER BY CASE severity WHEN 'P0' THEN 0 WHEN 'P1' THEN 1 WHEN 'P2' THEN 2 ELSE 3 END,
                                    ok, checked_at DESC))[1] AS worst_severity,
       (array_agg(summary ORDER BY CASE severity WHEN 'P0' THEN 0 WHEN 'P1' THEN 1 WHEN 'P2' THEN 2 ELSE 3 END,
                                   ok, checked_at DESC))[1] AS summary,
       count(*) AS checks, count(*) FILTER (WHERE NOT ok) AS not_ok,
       min(checked_at) AS first_at, max(checked_at) AS last_at
FROM check_results
WHERE business_date = :business_date
GROUP BY dag_id, run_id
ORDER BY min(checked_at)
