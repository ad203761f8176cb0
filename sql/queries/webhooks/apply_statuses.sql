-- Apply a batch of unprocessed status webhooks to deliveries, set-based and idempotent.
-- * Matched by wamid, else by our idempotency key echoed as biz_opaque_callback_data.
-- * A status never moves backwards (accepted < sent < failed < delivered < read); duplicates and
--   out-of-order events only fill in timestamps.
-- * Read implies delivered: Meta may skip the delivered event.
-- * A failure carries its error code and title.
-- * A webhook of an earlier attempt (its wamid superseded when the row was requeued) is set aside.
-- Rows still in the sender's hands (queued/sending/unknown) are left for the unknown-outcome resolver
-- (include/delivery/unknown_outcomes.py), which the sender and post-delivery reconciliation run; their events
-- stay unprocessed until the row is settled. Events for canary messages, and
-- events with no delivery after :orphan_after_s, are marked processed with a note.
WITH ev AS (
    SELECT e.event_id, e.wamid, e.status, e.event_ts, e.biz_opaque, e.payload, e.received_at
    FROM webhook_events e
    WHERE e.kind = 'status' AND e.processed_at IS NULL AND e.event_id > :after_id
    ORDER BY e.event_id
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
), matched AS (
    SELECT ev.*, coalesce(d1.delivery_id, d2.delivery_id) AS delivery_id,
           coalesce(d1.status, d2.status) AS delivery_status,
           d1.delivery_id IS NULL AND d2.delivery_id IS NULL AND ev.biz_opaque IS NOT NULL AND EXISTS (
               SELECT 1 FROM deliveries d3
               WHERE d3.idempotency_key = ev.biz_opaque AND ev.wamid = ANY(d3.superseded_wamids)) AS superseded
    FROM ev
    LEFT JOIN deliveries d1 ON d1.wamid = ev.wamid
    LEFT JOIN deliveries d2 ON d1.delivery_id IS NULL AND ev.biz_opaque IS NOT NULL
                           AND d2.idempotency_key = ev.biz_opaque AND NOT (ev.wamid = ANY(d2.superseded_wamids))
), applicable AS (
    SELECT * FROM matched
    WHERE delivery_id IS NOT NULL AND delivery_status IN ('accepted', 'sent', 'delivered', 'read', 'failed')
), agg AS (
    SELECT delivery_id, min(wamid) AS wamid,
           min(event_ts) FILTER (WHERE status = 'sent') AS sent_ts,
           min(event_ts) FILTER (WHERE status = 'delivered') AS delivered_ts,
           min(event_ts) FILTER (WHERE status = 'read') AS read_ts,
           min(event_ts) FILTER (WHERE status = 'failed') AS failed_ts,
           max(CASE status WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4
                           ELSE 0 END) AS new_rank,
           (array_agg(payload -> 'errors' -> 0 ORDER BY event_id) FILTER (WHERE status = 'failed'))[1] AS err,
           CASE min(delivery_status) WHEN 'accepted' THEN 0 WHEN 'sent' THEN 1 WHEN 'failed' THEN 2
                                     WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 END AS cur_rank
    FROM applicable GROUP BY delivery_id
), upd AS (
    UPDATE deliveries d SET
        status = CASE WHEN a.new_rank > a.cur_rank
                      THEN (ARRAY['sent', 'failed', 'delivered', 'read'])[a.new_rank] ELSE d.status END,
        wamid = coalesce(d.wamid, a.wamid),
        sent_at = coalesce(d.sent_at, a.sent_ts),
        delivered_at = coalesce(d.delivered_at, a.delivered_ts, a.read_ts),
        read_at = coalesce(d.read_at, a.read_ts),
        failed_at = CASE WHEN a.new_rank = 2 AND a.cur_rank < 2 THEN coalesce(a.failed_ts, now())
                         WHEN a.new_rank > 2 THEN NULL ELSE d.failed_at END,
        error_code = CASE WHEN a.new_rank = 2 AND a.cur_rank < 2 THEN coalesce(CAST(a.err ->> 'code' AS integer), 0)
                          WHEN greatest(a.new_rank, a.cur_rank) > 2 THEN NULL ELSE d.error_code END,
        error_title = CASE WHEN a.new_rank = 2 AND a.cur_rank < 2
                           THEN coalesce(a.err ->> 'title', 'failed status without error details')
                           WHEN greatest(a.new_rank, a.cur_rank) > 2 THEN NULL ELSE d.error_title END,
        updated_at = now()
    FROM agg a
    WHERE d.delivery_id = a.delivery_id
    RETURNING d.delivery_id
), done AS (
    UPDATE webhook_events w SET
        processed_at = now(),
        process_error = CASE WHEN m.delivery_id IS NOT NULL THEN NULL
                             WHEN m.superseded THEN 'webhook of an earlier attempt (wamid superseded by a resend)'
                             WHEN m.biz_opaque LIKE 'canary:%' THEN 'canary message (see canary_sends)'
                             ELSE 'no delivery with this wamid or idempotency key' END
    FROM matched m
    WHERE w.event_id = m.event_id
      AND (m.delivery_status IN ('accepted', 'sent', 'delivered', 'read', 'failed')
           OR m.superseded
           OR (m.delivery_id IS NULL AND (m.biz_opaque LIKE 'canary:%'
                                          OR m.received_at < now() - make_interval(secs => :orphan_after_s))))
    RETURNING w.event_id
)
SELECT (SELECT count(*) FROM ev) AS scanned, (SELECT max(event_id) FROM ev) AS last_id, (SELECT count(*) FROM upd) AS deliveries_updated,
       (SELECT count(*) FROM done) AS events_processed
