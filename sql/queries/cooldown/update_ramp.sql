UPDATE number_ramps SET share_pct = :share_pct, step = :step, cooldown_until = :cooldown_until,
       last_evaluated_day = :last_evaluated_day, last_healthy_day = :last_healthy_day,
       ended_at = CASE WHEN CAST(:ended AS boolean) THEN coalesce(ended_at, now()) ELSE NULL END,
       ended_reason = CASE WHEN CAST(:ended AS boolean) THEN CAST(:ended_reason AS text) ELSE NULL END
WHERE ramp_id = :ramp_id
