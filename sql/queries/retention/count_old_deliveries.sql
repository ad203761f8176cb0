-- What retention/old_deliveries would archive (dry run): same rows, counted, nothing locked.
SELECT count(*) AS n, min(delivery_id) AS first_id, max(delivery_id) AS last_id,
       min(business_date) AS oldest, max(business_date) AS newest
FROM deliveries
WHERE business_date < :cutoff AND status NOT IN ('queued', 'sending', 'unknown')
