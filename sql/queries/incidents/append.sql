INSERT INTO incident_timeline (incident_id, at, kind, actor, text, details)
VALUES (:incident_id, :at, :kind, :actor, :text, CAST(:details AS jsonb))
RETURNING entry_id
