-- Feed message_spend (and spend_daily, in the same statement) from the status webhooks stored since the last refresh.
-- Set-based and idempotent: a wamid is billed once, by the first stored status event that carries `pricing`
-- (Meta puts it on sent and on delivered or read); re-reading events inserts nothing twice. Each message is priced
-- with the rate card row in force on its business date (the IST date of the event). `billable` false, or a free
-- pricing type (free_customer_service, free_entry_point), costs 0; a billable category without a rate gets
-- inr NULL and counts as `unrated`.
-- Each event is read twice, both times through the primary key's range (never a scan of the table):
--   * when new: above read_through;
--   * once settled: a receiver transaction may commit after a refresh has read past its event ids, so the
--     events up to settle_cutoff (read_through as it was :settle_s seconds ago, when every transaction holding
--     an id at or below it had begun) are read once more for wamids not billed yet, and last_event_id, the
--     settled watermark, moves up to it. With :settle_s 0 this refresh's own read_through counts as settled.
-- Run under pg_try_advisory_xact_lock (budget.refresh_ledger): one refresher at a time, the others skip.
WITH w AS (
    SELECT last_event_id, read_through, settle_cutoff, settle_cutoff_at FROM spend_watermark WHERE singleton
), top AS (
    SELECT greatest((SELECT read_through FROM w), coalesce((
        SELECT max(e.event_id) FROM webhook_events e WHERE e.event_id > (SELECT read_through FROM w)), 0)) AS id
), settled AS (
    SELECT CASE WHEN CAST(:settle_s AS int) = 0 THEN (SELECT id FROM top)
                WHEN w.settle_cutoff_at <= now() - make_interval(secs => :settle_s) THEN w.settle_cutoff
           END AS cutoff
    FROM w
), ranges AS (  -- (lo, hi]: the new events, then the settled ones (below read_through, so never the same)
    SELECT read_through AS lo, (SELECT id FROM top) AS hi FROM w
    UNION ALL
    SELECT last_event_id, least(coalesce((SELECT cutoff FROM settled), 0), read_through) FROM w  -- least() skips NULLs
), events AS (  -- priced status events of wamids not billed yet
    SELECT e.*
    FROM ranges r
    CROSS JOIN LATERAL (  -- LATERAL: each range is read through the primary key (a plain join scanned the table)
        SELECT e.wamid, e.event_id, e.payload -> 'pricing' AS p, coalesce(e.event_ts, e.received_at) AS at
        FROM webhook_events e
        WHERE e.event_id > r.lo AND e.event_id <= r.hi
          AND e.kind = 'status' AND e.wamid IS NOT NULL AND jsonb_typeof(e.payload -> 'pricing') = 'object'
          AND NOT EXISTS (SELECT 1 FROM message_spend m WHERE m.wamid = e.wamid)) e
), src AS (
    SELECT DISTINCT ON (e.wamid) e.wamid, e.event_id, e.p, (e.at AT TIME ZONE 'Asia/Kolkata')::date AS business_date
    FROM events e
    ORDER BY e.wamid, e.event_id
), priced AS (
    SELECT s.wamid, s.event_id, s.business_date,
           coalesce(nullif(lower(btrim(s.p ->> 'category')), ''), 'unknown') AS category,
           coalesce(nullif(btrim(s.p ->> 'pricing_model'), ''), 'PMP') AS pricing_model,
           s.p ->> 'type' AS pricing_type,
           -- billable: as Meta says when it says it (a boolean); absent, a regular message is billed
           CASE WHEN jsonb_typeof(s.p -> 'billable') = 'boolean' THEN (s.p -> 'billable')::boolean ELSE true END
             AND coalesce(s.p ->> 'type', 'regular') NOT LIKE 'free%' AS billable
    FROM src s
), ins AS (
    INSERT INTO message_spend (wamid, business_date, category, pricing_model, pricing_type, billable, inr, event_id)
    SELECT p.wamid, p.business_date, p.category, p.pricing_model, p.pricing_type, p.billable,
           CASE WHEN p.billable THEN r.inr_per_message ELSE 0 END, p.event_id
    FROM priced p
    LEFT JOIN LATERAL (
        SELECT rc.inr_per_message FROM rate_card rc
        WHERE rc.category = p.category AND rc.pricing_model = p.pricing_model AND rc.effective_from <= p.business_date
        ORDER BY rc.effective_from DESC LIMIT 1) r ON true
    ON CONFLICT (wamid) DO NOTHING
    RETURNING business_date, billable, inr
), daily AS (
    INSERT INTO spend_daily AS d (business_date, messages, billable, unrated, inr)
    SELECT business_date, count(*), count(*) FILTER (WHERE billable),
           count(*) FILTER (WHERE billable AND inr IS NULL), coalesce(sum(inr), 0)
    FROM ins GROUP BY business_date
    ON CONFLICT (business_date) DO UPDATE
        SET messages = d.messages + excluded.messages, billable = d.billable + excluded.billable,
            unrated = d.unrated + excluded.unrated, inr = d.inr + excluded.inr, updated_at = now()
    RETURNING 1
), moved AS (
    UPDATE spend_watermark w
    SET read_through = (SELECT id FROM top),
        last_event_id = greatest(w.last_event_id, coalesce((SELECT cutoff FROM settled), 0)),
        -- a new cutoff starts its margin when the last one has settled (or there was none)
        settle_cutoff = CASE WHEN (SELECT cutoff FROM settled) IS NOT NULL OR w.settle_cutoff IS NULL
                             THEN (SELECT id FROM top) ELSE w.settle_cutoff END,
        settle_cutoff_at = CASE WHEN (SELECT cutoff FROM settled) IS NOT NULL OR w.settle_cutoff IS NULL
                                THEN now() ELSE w.settle_cutoff_at END,
        refreshed_at = now()
    WHERE w.singleton
    RETURNING w.last_event_id, w.read_through
)
SELECT (SELECT count(*) FROM ins) AS recorded, (SELECT count(*) FROM daily) AS days,
       (SELECT last_event_id FROM moved) AS watermark, (SELECT read_through FROM moved) AS read_through
