INSERT INTO delivery_attempts (business_date, advisor_id, attempt_no, phone_number_id, outcome, error_code, latency_ms)
VALUES (:business_date, :advisor_id, :attempt_no, :phone_number_id, :outcome, :error_code, :latency_ms)
