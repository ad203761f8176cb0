-- Lifecycle events (template, quality, phone-number, account) are applied when they are stored, so they are
-- marked processed at once; process_error says why one changed nothing (unknown template or number, an older
-- event than the state already shown, an event that is stored for the operators only).
UPDATE webhook_events w SET processed_at = now(), process_error = m.note
FROM unnest(CAST(:event_ids AS bigint[]), CAST(:notes AS text[])) AS m(event_id, note)
WHERE w.event_id = m.event_id
