-- Production truth for unknown send outcomes (issue 13).
-- A requeued row forgets its old wamid into superseded_wamids: a late webhook of an earlier attempt must
-- never settle (or upgrade) a resend, neither by wamid nor by the idempotency key it echoes.
ALTER TABLE deliveries ADD COLUMN superseded_wamids text[] NOT NULL DEFAULT '{}';
-- Recent status events joined to their messages: the webhook watermark reads the newest few thousand.
CREATE INDEX IF NOT EXISTS webhook_events_status_recent_idx ON webhook_events (event_id DESC) WHERE kind = 'status';
