-- How many deliveries of a business date retention archived (their keys are in sent_keys), and when.
SELECT count(*) AS archived, min(archived_at) AS first_archived_at
FROM sent_keys
WHERE business_date = :business_date
