-- Live and dead tuples of the hot tables, and when they were last vacuumed and analysed.
SELECT relname AS "table", n_live_tup, n_dead_tup, last_vacuum, last_autovacuum,
       coalesce(last_analyze, last_autoanalyze) AS last_analyze, pg_total_relation_size(relid) AS bytes
FROM pg_stat_user_tables
WHERE relname = ANY(:tables) AND schemaname = current_schema()
ORDER BY relname
