-- P0s whose post-mortem is past due and not yet reminded about.
SELECT incident_id, dedup_key, severity, category, trigger, business_date, opened_at, postmortem_due_at
FROM incidents
WHERE postmortem_due_at IS NOT NULL AND postmortem_due_at < :now AND postmortem_reminded_at IS NULL
ORDER BY postmortem_due_at, incident_id
