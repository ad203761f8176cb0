-- Add one call's usage to its day and model.
INSERT INTO ai_usage_daily AS u (usage_day, model, calls, failures, prompt_tokens, completion_tokens, total_tokens,
                                 cost)
VALUES (:usage_day, :model, 1, CASE WHEN :ok THEN 0 ELSE 1 END, :prompt_tokens, :completion_tokens,
        CAST(:prompt_tokens AS bigint) + CAST(:completion_tokens AS bigint), :cost)
ON CONFLICT (usage_day, model) DO UPDATE SET
    calls = u.calls + 1, failures = u.failures + EXCLUDED.failures,
    prompt_tokens = u.prompt_tokens + EXCLUDED.prompt_tokens,
    completion_tokens = u.completion_tokens + EXCLUDED.completion_tokens,
    total_tokens = u.total_tokens + EXCLUDED.total_tokens, cost = u.cost + EXCLUDED.cost, updated_at = now()
