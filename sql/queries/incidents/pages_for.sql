SELECT role, step FROM incident_pages WHERE incident_id = :incident_id
