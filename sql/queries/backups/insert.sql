INSERT INTO backups (kind, uri, sha256, bytes, snapshot_at, newest_data_at, table_counts, table_checksums, tables,
                     checksum_method)
VALUES (:kind, :uri, :sha256, :bytes, :snapshot_at, :newest_data_at, CAST(:table_counts AS jsonb),
        CAST(:table_checksums AS jsonb), CAST(:tables AS text[]), :checksum_method)
RETURNING backup_id
