-- A phone_number_quality_update webhook, applied in the transaction that stores it, to the sending number
-- whose display phone has the same digits (ours is stored as +<digits>, Meta sends digits, maybe spaced).
-- The mapping (include/whatsapp/webhook_receiver.py, README "Webhooks and post-delivery reporting"):
-- * FLAGGED: quality_rating RED (Meta: "Flagged status occurs when the quality rating reaches a low state");
-- * UNFLAGGED: a RED rating becomes UNKNOWN (no longer low; GREEN or YELLOW is known only from the next
--   GET /<phone-number-id>), any other rating is kept;
-- * the tier (from max_daily_conversations_per_business, else the deprecated current_limit) sets messaging_tier;
-- * the throughput of a THROUGHPUT_UPGRADE sets the throughput.
-- An event older than the last applied one changes nothing. Returns the rows changed.
UPDATE sending_numbers n SET
    quality_rating = CASE WHEN CAST(:event AS text) = 'FLAGGED' THEN 'RED'
                          WHEN CAST(:event AS text) = 'UNFLAGGED' AND n.quality_rating = 'RED' THEN 'UNKNOWN'
                          ELSE n.quality_rating END,
    messaging_tier = coalesce(CAST(:tier AS text), n.messaging_tier),
    throughput_mps = coalesce(CAST(:throughput_mps AS integer), n.throughput_mps),
    quality_event = :event,
    quality_changed_at = CAST(:at AS timestamptz),
    quality_event_id = :event_id
WHERE regexp_replace(n.display_phone, '[^0-9]', '', 'g') = CAST(:digits AS text)
  AND (n.quality_changed_at IS NULL OR n.quality_changed_at <= CAST(:at AS timestamptz))
RETURNING n.phone_number_id
