-- One row per planned advisor with its delivery outcome (the report's CSV and the KPIs' input).
SELECT p.business_date, p.advisor_id, a.external_ref, p.segment, p.shard, coalesce(d.phone_number_id, p.phone_number_id)
           AS phone_number_id, p.content_source, p.template_name,
       coalesce(d.status, 'not_queued') AS status, d.attempts, d.wamid, d.error_code, d.error_title, d.skip_reason,
       d.api_latency_ms, d.queued_at, d.accepted_at, d.sent_at, d.delivered_at, d.read_at, d.failed_at
FROM delivery_plan p
JOIN advisors a ON a.advisor_id = p.advisor_id
LEFT JOIN deliveries d ON d.business_date = p.business_date AND d.advisor_id = p.advisor_id
WHERE p.business_date = :business_date
ORDER BY p.advisor_id
