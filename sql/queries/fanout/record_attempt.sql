-- Log a batch of API attempts in one statement (each parameter is an array, one element per attempt).
INSERT INTO delivery_attempts (business_date, advisor_id, attempt_no, phone_number_id, outcome, error_code, latency_ms)
SELECT * FROM unnest(CAST(:business_date AS date[]), CAST(:advisor_id AS bigint[]), CAST(:attempt_no AS integer[]),
                     CAST(:phone_number_id AS text[]), CAST(:outcome AS text[]), CAST(:error_code AS integer[]),
                     CAST(:latency_ms AS integer[]))
