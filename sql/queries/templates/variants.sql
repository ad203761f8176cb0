SELECT name, language, variant_rank, status, quality, last_checked_at
FROM whatsapp_templates
WHERE purpose = :purpose
ORDER BY language, variant_rank
