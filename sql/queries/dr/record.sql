INSERT INTO dr_drills (backup_id, rto_s, rpo_s, rto_target_s, rpo_target_s, plan_date, plan_rows, plan_matches, ok,
                       details)
VALUES (:backup_id, :rto_s, :rpo_s, :rto_target_s, :rpo_target_s, :plan_date, :plan_rows, :plan_matches, :ok,
        CAST(:details AS jsonb))
