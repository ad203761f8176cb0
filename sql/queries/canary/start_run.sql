INSERT INTO canary_runs (business_date, run_id, recipients) VALUES (:business_date, :run_id, :recipients)
RETURNING canary_run_id
