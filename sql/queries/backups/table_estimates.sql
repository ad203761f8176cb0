-- Planner estimates of the app tables' rows (a dry run reports them without scanning the tables).
SELECT c.relname AS table_name, greatest(c.reltuples, 0)::bigint AS estimated_rows,
       pg_total_relation_size(c.oid) AS bytes
FROM pg_class c
WHERE c.relname = ANY(:tables) AND c.relnamespace = current_schema()::regnamespace
ORDER BY c.relname
