-- The templates a unit's plan rows use (read once when the unit starts; claims add what it meets later).
SELECT DISTINCT p.template_name, p.template_language
FROM delivery_plan p
WHERE p.business_date = :business_date AND p.shard = :shard AND p.segment = ANY(CAST(:segments AS text[]))
