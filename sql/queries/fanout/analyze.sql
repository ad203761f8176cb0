-- Fresh statistics after bulk-loading the day's queue, so the claim query plans with real row counts (a day's rows
-- are a few percent of the table: too few for autovacuum to re-analyze it, enough to mislead the planner).
-- delivery_plan is analyzed where it is written (plan/analyze.sql, at 05:50), not here at 06:00.
ANALYZE deliveries
