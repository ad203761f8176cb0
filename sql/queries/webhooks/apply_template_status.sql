-- A message_template_status_update webhook, applied in the transaction that stores it: the template's status
-- (Meta's event mapped to our status list by include/whatsapp/webhook_receiver.py), why, when and which event.
-- Matched on name + language (Meta may spell the locale en_US or en-US), or on Meta's template id when the
-- webhook has no name. An event older than the last applied one (entry.time) changes nothing, so late or
-- replayed webhooks never move a template back. Returns the rows changed.
UPDATE whatsapp_templates t SET
    status = :status,
    status_reason = :reason,
    status_changed_at = CAST(:at AS timestamptz),
    status_event_id = :event_id,
    wa_template_id = coalesce(t.wa_template_id, CAST(:template_id AS text))
WHERE (CASE WHEN CAST(:name AS text) IS NOT NULL
            THEN t.name = :name AND replace(t.language, '-', '_') = replace(CAST(:language AS text), '-', '_')
            ELSE t.wa_template_id = :template_id END)
  AND (t.status_changed_at IS NULL OR t.status_changed_at <= CAST(:at AS timestamptz))
RETURNING t.template_id
