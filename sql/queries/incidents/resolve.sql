UPDATE incidents
SET resolved_at = GREATEST(:now, opened_at), resolved_by = :actor, resolved_how = :how
WHERE incident_id = :incident_id AND resolved_at IS NULL
RETURNING incident_id
