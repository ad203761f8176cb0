-- The first acknowledgement wins; later ones are only timeline entries.
UPDATE incidents
SET acknowledged_at = :now, acknowledged_by = :actor, acknowledged_via = :via
WHERE incident_id = :incident_id AND acknowledged_at IS NULL AND resolved_at IS NULL
RETURNING incident_id
