-- Tokens and cost spent on AI reviews on one IST day, all models (checked against the daily ceilings).
SELECT coalesce(sum(total_tokens), 0) AS tokens, coalesce(sum(cost), 0) AS cost,
       coalesce(sum(calls), 0) AS calls, coalesce(sum(failures), 0) AS failures
FROM ai_usage_daily WHERE usage_day = :usage_day
