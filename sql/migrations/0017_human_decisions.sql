-- Human-in-the-loop acknowledgement (issue 17): escalation asks for an acknowledgement in the Airflow UI
-- (the `incident_acknowledgement` DAG's Required Actions) once per open incident; the request, its answer or its
-- lapse are timeline entries of their own kind.
ALTER TABLE incident_timeline DROP CONSTRAINT incident_timeline_kind_check;
ALTER TABLE incident_timeline ADD CONSTRAINT incident_timeline_kind_check
    CHECK (kind IN ('alert', 'page', 'escalation', 'ack', 'operator_action', 'resolved', 'reminder', 'ack_request'));
