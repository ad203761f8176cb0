-- Template variants and their status with Meta.
SELECT name, language, purpose, variant_rank, status, quality, status_reason, status_changed_at, last_checked_at
FROM whatsapp_templates
ORDER BY purpose, language, variant_rank
