-- Fresh statistics after bulk-loading the day's queue, so the claim query plans with real row counts.
ANALYZE deliveries, delivery_plan, delivery_attempts
