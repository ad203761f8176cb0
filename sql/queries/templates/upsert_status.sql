-- Sync one template's status from WhatsApp. Templates unknown locally are added as variants of
-- no purpose ('unassigned') so operators can see them without them being used.
INSERT INTO whatsapp_templates (name, language, purpose, variant_rank, category, status, quality, wa_template_id,
                                last_checked_at, body_param_count)
VALUES (:name, :language, 'unassigned:' || :name, 1, :category, :status, :quality, :wa_template_id, now(),
        :body_param_count)
ON CONFLICT (name, language) DO UPDATE
SET status = EXCLUDED.status, quality = EXCLUDED.quality, wa_template_id = EXCLUDED.wa_template_id,
    last_checked_at = now()
RETURNING template_id
