SELECT entry_id, at, kind, actor, text, details
FROM incident_timeline
WHERE incident_id = :incident_id
ORDER BY at, entry_id
