UPDATE backups SET deleted_at = now() WHERE backup_id = :backup_id
