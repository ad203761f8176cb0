INSERT INTO archive_runs (table_name, first_id, last_id, rows, uri, sha256)
VALUES (:table_name, :first_id, :last_id, :rows, :uri, :sha256)
ON CONFLICT (table_name, first_id, last_id) DO UPDATE
SET rows = EXCLUDED.rows, uri = EXCLUDED.uri, sha256 = EXCLUDED.sha256, archived_at = now()
