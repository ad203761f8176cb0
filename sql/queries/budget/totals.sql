-- Spend of a date and of its month so far (spend_daily), with the billable messages the card had no rate for.
SELECT coalesce(sum(inr) FILTER (WHERE business_date = :business_date), 0) AS day_inr,
       coalesce(sum(inr), 0) AS month_inr,
       coalesce(sum(billable) FILTER (WHERE business_date = :business_date), 0) AS day_billable,
       coalesce(sum(unrated), 0) AS month_unrated
FROM spend_daily
WHERE business_date BETWEEN CAST(date_trunc('month', CAST(:business_date AS date)) AS date) AND :business_date
