SELECT error_code, count(*) AS n FROM deliveries
WHERE business_date = :business_date AND status = 'failed'
GROUP BY error_code
