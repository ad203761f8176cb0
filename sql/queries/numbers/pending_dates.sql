-- Business dates from today (IST) on that still have plan rows on a number.
SELECT DISTINCT business_date FROM delivery_plan
WHERE phone_number_id = :n AND business_date >= (now() AT TIME ZONE 'Asia/Kolkata')::date
