"""
### Daily backup — 03:30 IST

Runbook *"Backups"*: a `pg_dump` of the app DB every night, restored into a scratch database to prove
it (P1 if it cannot be restored). Retention keeps the newest 7 daily and 4 weekly backups (the weekly
ones come from `weekly_maintenance`).
"""
from __future__ import annotations

from airflow.sdk import dag, get_current_context

from include.core import config
from include.core.dagkit import default_args, ist_cron, task


@dag(dag_id="daily_backup", schedule=ist_cron(config.SCHEDULE_DAILY_BACKUP), catchup=False, max_active_runs=1,
     tags=["maintenance", "backup"], default_args=default_args("maintenance"), doc_md=__doc__,
     description="03:30 IST: pg_dump the app DB and prove it restores (state as of run time)")
def daily_backup():
    from include.maintenance import tasks as m

    @task(pool=config.POOL_DB_MAINTENANCE)  # one DB-heavy step at a time, never the senders' slots
    def backup_app_db() -> dict:
        return m.run_backup(get_current_context(), "daily", "daily_backup")

    @task(pool=config.POOL_DB_MAINTENANCE)  # one DB-heavy step at a time, never the senders' slots
    def verify_backup_restore(backup: dict) -> dict:
        return m.run_verify_backup(backup, get_current_context(), "daily_backup")

    verify_backup_restore(backup_app_db())


daily_backup()
