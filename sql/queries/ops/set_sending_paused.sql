-- An operator's flip (ops_pause_sending / ops_resume_sending / the cockpit): the cause is the operator's.
UPDATE ops_controls
SET paused = :paused, reason = :reason, changed_by = :actor, changed_at = now(), cause = 'operator'
WHERE control = 'sending'
RETURNING paused, reason, changed_by, changed_at, cause
