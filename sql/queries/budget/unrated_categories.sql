-- The categories of billable messages of a month (to :business_date) that the rate card could not price.
SELECT category, count(*) AS messages
FROM message_spend
WHERE business_date BETWEEN CAST(date_trunc('month', CAST(:business_date AS date)) AS date) AND :business_date
  AND billable AND inr IS NULL
GROUP BY category ORDER BY category
