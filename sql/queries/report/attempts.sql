-- API attempts of a date (send-rate per minute and API latency).
SELECT at, phone_number_id, outcome, error_code, latency_ms
FROM delivery_attempts WHERE business_date = :business_date
