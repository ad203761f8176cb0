INSERT INTO audit_log (actor, action, target, reason, details)
VALUES (:actor, :action, :target, :reason, CAST(:details AS jsonb))
RETURNING audit_id
