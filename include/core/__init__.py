"""Shared ground of every runbook: settings, business dates, the app database, storage, alerting, audit,
check results, and the DAG conventions."""
