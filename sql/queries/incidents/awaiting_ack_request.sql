-- Open, unacknowledged incidents whose acknowledgement has not been requested in the Airflow UI yet.
SELECT i.incident_id, i.severity, i.category, i.trigger, i.business_date, i.opened_at
FROM incidents i
WHERE i.resolved_at IS NULL AND i.acknowledged_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM incident_timeline t WHERE t.incident_id = i.incident_id AND t.kind = 'ack_request')
ORDER BY i.opened_at, i.incident_id
