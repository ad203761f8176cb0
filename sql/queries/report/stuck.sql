-- Messages accepted by the API that have no final status (delivered, read or failed) after a while.
SELECT d.delivery_id, d.advisor_id, d.phone_number_id, d.status, d.wamid, d.accepted_at,
       round(extract(epoch FROM now() - d.accepted_at) / 60) AS minutes_waiting
FROM deliveries d
WHERE d.business_date = :business_date AND d.status IN ('accepted', 'sent')
  AND d.accepted_at < now() - make_interval(mins => :stuck_after_min)
ORDER BY d.accepted_at
