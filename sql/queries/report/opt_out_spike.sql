-- Opt-outs by inbound reply: how many in the last 5 minutes, and the share of the last 100 accepted
-- messages whose recipient opted out after receiving it.
WITH last100 AS (
    SELECT to_phone, accepted_at FROM deliveries
    WHERE business_date = :business_date AND accepted_at IS NOT NULL
    ORDER BY accepted_at DESC LIMIT 100
)
SELECT (SELECT count(*) FROM do_not_contact WHERE source = 'inbound_opt_out'
          AND added_at > now() - interval '5 minutes') AS last_5min,
       (SELECT count(*) FROM last100) AS recent_sends,
       (SELECT count(*) FROM last100 l JOIN do_not_contact d ON d.phone_e164 = l.to_phone
          AND d.source IN ('inbound_opt_out', 'api_opt_out') AND d.added_at >= l.accepted_at) AS recent_opt_outs
