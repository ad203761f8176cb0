-- One notifier per business date at a time (overlapping runs queue here; the unique keys are the second guard).
SELECT pg_advisory_xact_lock(hashtext('advisor_delay_notices'), CAST(:business_date AS date) - DATE '2000-01-01')
