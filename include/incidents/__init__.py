"""Incident response: incident records and timeline (records.py), the escalation ladders (escalation.py, pure),
paging and post-mortem reminders (paging.py), the on-call roster (roster.py) and the Airflow task entry points
(tasks.py). No Airflow import at module level."""
