-- Leaf density of the hot tables' B-tree indexes (pgstattuple): low density means a bloated index.
SELECT i.indexrelid::regclass::text AS index_name, pg_relation_size(i.indexrelid) AS bytes,
       (pgstatindex(i.indexrelid::regclass)).avg_leaf_density AS avg_leaf_density
FROM pg_index i
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam AND am.amname = 'btree'
WHERE t.relname = ANY(:tables) AND pg_relation_size(i.indexrelid) >= :min_bytes
ORDER BY 1
