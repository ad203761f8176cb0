-- Opt-outs seen in webhooks put the number on the do-not-contact list at once, in the transaction that
-- stores the event, with the source event:
-- * inbound opt-out replies (STOP, ...): source 'inbound_opt_out';
-- * failed statuses with error 131050 ("user has stopped marketing messages") and user_preferences
--   'stop' webhooks: source 'api_opt_out'.
-- A number already on the list keeps its first entry.
INSERT INTO do_not_contact (phone_e164, reason, source, source_event_id, added_by)
SELECT DISTINCT ON (o.phone) o.phone, o.reason, o.source, o.event_id, 'whatsapp_webhook'
FROM unnest(CAST(:phones AS text[]), CAST(:reasons AS text[]), CAST(:sources AS text[]),
            CAST(:event_ids AS bigint[])) AS o(phone, reason, source, event_id)
ORDER BY o.phone, o.event_id
ON CONFLICT (phone_e164) DO NOTHING
RETURNING phone_e164
