"""The delivery cockpit: one page in the Airflow UI for the morning's delivery (checks, live progress per number
and shard, numbers, templates, the kill switch, alerts, trend, runs, the daily report).

`data.py` reads the snapshot (plain functions over an engine and a date), `app.py` is the FastAPI app the api-server
mounts at /cockpit (plugins/delivery_cockpit.py), `templates/` holds its page. It lives under `operations/` because it
is the operators' console: besides reading, it drives an operator action (the audited kill switch) through the same
code as the ops DAGs.
"""
