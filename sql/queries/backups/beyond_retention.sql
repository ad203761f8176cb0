-- Backups past the retention: older than the newest :keep_daily daily and :keep_weekly weekly ones.
SELECT backup_id, uri FROM (
    SELECT backup_id, uri, kind,
           row_number() OVER (PARTITION BY kind ORDER BY snapshot_at DESC, backup_id DESC) AS rn
    FROM backups WHERE deleted_at IS NULL AND kind IN ('daily', 'weekly')
) b
WHERE (kind = 'daily' AND rn > :keep_daily) OR (kind = 'weekly' AND rn > :keep_weekly)
