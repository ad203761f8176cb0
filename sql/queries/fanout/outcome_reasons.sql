SELECT status, COALESCE(CAST(error_code AS text), skip_reason, '-') AS reason, count(*) AS n
FROM deliveries
WHERE business_date = :business_date AND status NOT IN ('accepted', 'sent', 'delivered', 'read')
GROUP BY 1, 2 ORDER BY 3 DESC
