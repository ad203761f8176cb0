INSERT INTO check_results (business_date, dag_id, run_id, check_name, severity, ok, summary, items)
VALUES (:business_date, :dag_id, :run_id, :check_name, :severity, :ok, :summary, CAST(:items AS jsonb))
