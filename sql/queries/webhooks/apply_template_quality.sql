-- A message_template_quality_update webhook, applied in the transaction that stores it: the template's
-- quality score (GREEN / YELLOW / RED / UNKNOWN). Matched like apply_template_status; an event older than the
-- last applied quality change changes nothing. Returns the rows changed.
UPDATE whatsapp_templates t SET
    quality = :quality,
    quality_changed_at = CAST(:at AS timestamptz),
    wa_template_id = coalesce(t.wa_template_id, CAST(:template_id AS text))
WHERE (CASE WHEN CAST(:name AS text) IS NOT NULL
            THEN t.name = :name AND replace(t.language, '-', '_') = replace(CAST(:language AS text), '-', '_')
            ELSE t.wa_template_id = :template_id END)
  AND (t.quality_changed_at IS NULL OR t.quality_changed_at <= CAST(:at AS timestamptz))
RETURNING t.template_id
