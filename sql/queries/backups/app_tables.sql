-- Every table of the app schema (the schema the connection works in), from the catalog as it is now:
-- what a backup must bring back. Extension-owned tables are left out (pg_dump does not dump their rows),
-- and so are temporary ones.
SELECT c.relname AS table_name
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema()
  AND c.relkind IN ('r', 'p')
  AND c.relpersistence IN ('p', 'u')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY c.relname
