-- The budget guard engages the kill switch, unless it is already on (an operator's pause keeps its who and why).
-- Returns the row only when this statement engaged it.
UPDATE ops_controls
SET paused = true, cause = 'budget', reason = :reason, changed_by = :actor, changed_at = now()
WHERE control = 'sending' AND NOT paused
RETURNING paused, reason, changed_by, changed_at
