DELETE FROM sender_leases WHERE lease_id = CAST(:lease_id AS uuid)
