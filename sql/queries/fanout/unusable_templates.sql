-- Of the given templates, those WhatsApp no longer lets us send (paused, disabled, rejected...), as the webhook
-- receiver (message_template_status_update) or the last sync recorded them.
SELECT name, language, status
FROM whatsapp_templates
WHERE name = ANY(CAST(:names AS text[])) AND status <> 'APPROVED'
