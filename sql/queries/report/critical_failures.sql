-- Failures that need a human whatever their count (auth, policy, spam limits, disabled templates),
-- from final outcomes and from API attempts (a 190 may have left rows queued, not failed).
SELECT coalesce(d.code, a.code) AS error_code, coalesce(d.n, 0) AS failed_rows, coalesce(a.n, 0) AS attempts
FROM (SELECT error_code AS code, count(*) AS n FROM deliveries
      WHERE business_date = :business_date AND status = 'failed' AND error_code = ANY(:codes) GROUP BY 1) d
FULL JOIN (SELECT error_code AS code, count(*) AS n FROM delivery_attempts
           WHERE business_date = :business_date AND error_code = ANY(:codes) GROUP BY 1) a ON a.code = d.code
