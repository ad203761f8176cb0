"""Local stack: embedded PostgreSQL, Airflow processes and the sandbox, for `make run` and tests."""
