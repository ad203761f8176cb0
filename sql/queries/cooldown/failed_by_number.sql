-- A date's failures with the given codes per number they were sent from (what a re-send would requeue).
SELECT phone_number_id, count(*) AS n FROM deliveries
WHERE business_date = :business_date AND status = 'failed' AND error_code = ANY(:codes)
GROUP BY phone_number_id
