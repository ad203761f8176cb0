-- API attempts per number over the trailing :window_s seconds (the current send rate).
SELECT phone_number_id, count(*) AS attempts, count(*) FILTER (WHERE outcome = 'accepted') AS accepted
FROM delivery_attempts
WHERE business_date = :business_date AND at > now() - make_interval(secs => :window_s)
GROUP BY phone_number_id
