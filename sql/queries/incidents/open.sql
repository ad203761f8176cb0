-- Every open incident, oldest first (the escalation task's work list).
SELECT incident_id, dedup_key, severity, category, trigger, business_date, opened_at, acknowledged_at,
       acknowledged_by, acknowledged_via, resolved_at, resolved_by, resolved_how, postmortem_due_at,
       postmortem_reminded_at, impact
FROM incidents
WHERE resolved_at IS NULL
ORDER BY opened_at, incident_id
