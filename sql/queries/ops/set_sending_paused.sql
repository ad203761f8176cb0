UPDATE ops_controls
SET paused = :paused, reason = :reason, changed_by = :actor, changed_at = now()
WHERE control = 'sending'
RETURNING paused, reason, changed_by, changed_at
