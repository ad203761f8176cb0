INSERT INTO budget_overrides (period, period_start, granted_by, reason, spent_inr, budget_inr)
VALUES (:period, :period_start, :granted_by, :reason, :spent_inr, :budget_inr)
RETURNING override_id
