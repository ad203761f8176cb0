-- In-window monitoring over the trailing window of API attempts for a date.
SELECT count(*) FILTER (WHERE outcome = 'accepted') AS accepted,
       count(*) FILTER (WHERE outcome = 'failed') AS failed,
       count(*) FILTER (WHERE outcome IN ('retry', 'unknown')) AS retried,
       count(*) FILTER (WHERE error_code = 190) AS auth_errors
FROM delivery_attempts
WHERE business_date = :business_date AND at > now() - make_interval(secs => :window_s)
  AND at <= now() - make_interval(secs => :offset_s)
