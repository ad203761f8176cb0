UPDATE backups SET verified_at = now(), verify_ok = :ok, verify_detail = CAST(:detail AS jsonb)
WHERE backup_id = :backup_id
