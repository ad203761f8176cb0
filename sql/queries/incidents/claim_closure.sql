INSERT INTO incident_page_closures (incident_id, role, action, sent_at)
VALUES (:incident_id, :role, :action, :sent_at)
ON CONFLICT (incident_id, role, action) DO NOTHING
RETURNING incident_id
