SELECT incident_id FROM incidents
WHERE resolved_at IS NULL AND category = :category AND business_date IS NOT DISTINCT FROM :business_date
ORDER BY incident_id
