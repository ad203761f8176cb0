-- The given backup, or the newest one still kept.
SELECT backup_id, kind, uri, sha256, bytes, snapshot_at, newest_data_at, table_counts, table_checksums, tables,
       checksum_method, verify_ok
FROM backups
WHERE deleted_at IS NULL AND (CAST(:backup_id AS bigint) IS NULL OR backup_id = CAST(:backup_id AS bigint))
ORDER BY snapshot_at DESC, backup_id DESC
LIMIT 1
