-- Webhook processing lag: events waiting, and how long the oldest has waited.
SELECT count(*) FILTER (WHERE processed_at IS NULL AND kind = 'status') AS unprocessed,
       extract(epoch FROM now() - min(received_at) FILTER (WHERE processed_at IS NULL AND kind = 'status'))
           AS oldest_unprocessed_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))
           FILTER (WHERE processed_at IS NOT NULL AND received_at > now() - interval '1 day') AS p95_processing_s
FROM webhook_events
