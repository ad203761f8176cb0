-- The slowest statements on average, among those called at least 5 times.
SELECT query, calls, mean_exec_time AS mean_ms, total_exec_time AS total_ms, rows
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND calls >= 5
ORDER BY mean_exec_time DESC
LIMIT :limit
