SELECT count(*) FROM deliveries
WHERE business_date >= :month_start AND business_date < :month_end AND wamid IS NOT NULL
