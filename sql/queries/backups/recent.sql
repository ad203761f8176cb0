-- The newest kept backups and how their verification went (NULL: not verified yet).
SELECT backup_id, kind, snapshot_at, verify_ok, verified_at
FROM backups
WHERE deleted_at IS NULL
ORDER BY snapshot_at DESC, backup_id DESC
LIMIT :limit
