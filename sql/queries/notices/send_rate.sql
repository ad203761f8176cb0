-- Messages accepted by the API in the trailing :window_s seconds up to :now (the measured send rate).
SELECT count(*) AS accepted
FROM delivery_attempts
WHERE business_date = :business_date AND outcome = 'accepted'
  AND at > CAST(:now AS timestamptz) - make_interval(secs => :window_s) AND at <= CAST(:now AS timestamptz)
