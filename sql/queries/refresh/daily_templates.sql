SELECT name, language, variant_rank, category, status, quality
FROM whatsapp_templates WHERE purpose = 'daily_pack' ORDER BY language, variant_rank
