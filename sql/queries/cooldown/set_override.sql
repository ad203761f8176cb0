UPDATE number_ramps SET override_reason = :reason, override_by = :actor, overridden_at = now()
WHERE ramp_id = :ramp_id
