-- A newly submitted variant becomes the next backup of the daily pack for its language.
INSERT INTO whatsapp_templates (name, language, purpose, variant_rank, category, status, quality, wa_template_id,
                                body_param_count, last_checked_at)
VALUES (:name, :language, 'daily_pack', :variant_rank, :category, :status, 'UNKNOWN', :wa_template_id, 3, now())
ON CONFLICT (name, language) DO UPDATE SET status = EXCLUDED.status, wa_template_id = EXCLUDED.wa_template_id
