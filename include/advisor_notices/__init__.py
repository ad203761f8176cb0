"""Advisor delay notices (issue 17 §6): the pure rules (delays.py), the in-app outbox and email rows (outbox.py),
email through Airflow's SMTP provider (email.py), the status page (status_page.py, templates/) and the Airflow task
entry points of advisor_delay_notices (tasks.py). No Airflow import at module level."""
