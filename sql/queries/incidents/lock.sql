SELECT incident_id FROM incidents WHERE incident_id = :incident_id FOR UPDATE
