-- The next chunk of deliveries past retention, oldest first, locked for archive-then-delete.
-- Deliveries not in a final state are never archived.
SELECT * FROM deliveries
WHERE business_date < :cutoff AND status NOT IN ('queued', 'sending', 'unknown')
ORDER BY delivery_id
LIMIT :limit
FOR UPDATE
