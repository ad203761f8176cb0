-- Claim the one reminder of an incident (a concurrent caller waits, then finds it claimed).
UPDATE incidents SET postmortem_reminded_at = :now
WHERE incident_id = :incident_id AND postmortem_reminded_at IS NULL
RETURNING incident_id
