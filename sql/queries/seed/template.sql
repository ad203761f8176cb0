INSERT INTO whatsapp_templates (name, language, purpose, variant_rank, category, status, quality, body_param_count)
VALUES (:name, :language, :purpose, :variant_rank, 'MARKETING', :status, 'GREEN', :body_param_count)
ON CONFLICT (name, language) DO NOTHING
