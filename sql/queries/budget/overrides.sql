-- Budget overrides in force for a date: the daily one of that date, the monthly one of its month.
SELECT period, granted_by, reason, granted_at
FROM budget_overrides
WHERE (period = 'daily' AND period_start = :business_date)
   OR (period = 'monthly' AND period_start = CAST(date_trunc('month', CAST(:business_date AS date)) AS date))
ORDER BY granted_at
