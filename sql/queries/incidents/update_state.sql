-- After a join: the (never better) severity, the merged impact figures and the post-mortem deadline.
UPDATE incidents
SET severity = :severity, impact = CAST(:impact AS jsonb),
    postmortem_due_at = COALESCE(postmortem_due_at, :postmortem_due_at)
WHERE incident_id = :incident_id
