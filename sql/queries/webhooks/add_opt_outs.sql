-- Inbound opt-out replies put the sender on the do-not-contact list at once, with the source event.
INSERT INTO do_not_contact (phone_e164, reason, source, source_event_id, added_by)
SELECT o.phone, o.reason, 'inbound_opt_out', o.event_id, 'whatsapp_webhook'
FROM unnest(CAST(:phones AS text[]), CAST(:reasons AS text[]), CAST(:event_ids AS bigint[])) AS o(phone, reason, event_id)
ON CONFLICT (phone_e164) DO NOTHING
RETURNING phone_e164
