"""
### Weekly maintenance — Sundays 02:00 IST

Runbook *"Weekly maintenance"*.

| Task | Runbook step |
|---|---|
| `run_database_upkeep` | VACUUM (ANALYZE) hot tables with dead tuples (`pg_stat_user_tables`), REINDEX CONCURRENTLY B-trees with low leaf density (`pgstattuple`), slow-query report (`pg_stat_statements`; says so if unavailable) |
| `clean_render_cache` | Removes render objects past retention that no plan row, pending delivery or recent render needs; reports bytes freed |
| `archive_old_rows` | Archives `webhook_events` and `deliveries` older than N days to gzip JSON-lines in object storage, deleting them in the same transaction (crash-safe, rerun-safe); each archived delivery's key stays in `sent_keys` so its date is never sent again |
| `clean_airflow_metadata` | `airflow db clean` for Airflow records older than N days (CLI) |
| `backup_app_db` | `pg_dump -Fc` in an exported snapshot, with sha256 and the counts and checksums of every app table (listed from the catalog) |
| `verify_backup_restore` | Restores into a scratch database and compares every recorded table (P1 and a failed task if not); keeps 7 daily + 4 weekly |
| `check_dependency_drift` | Installed packages vs the lock; known vulnerabilities if an advisory database is reachable (says so when offline) |
| `publish_maintenance_summary` | One Slack summary |

**`dry_run: true`** changes nothing: each step reports what it would do — tables it would vacuum and
indexes it would reindex (no VACUUM, REINDEX or CREATE EXTENSION), rows and files it would archive (no
file written, no row deleted), renders it would remove, `airflow db clean --dry-run`, the tables a
backup would dump and the backups retention would delete. No backup is taken or restored in a dry run:
nothing is deleted, so none is needed, and taking one would itself change the backup set and its
retention. Only the run's `check_results` rows and the Slack summary are written.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from include.core import config
from include.core.dagkit import default_args, ist_cron, task


@dag(dag_id="weekly_maintenance", schedule=ist_cron(config.SCHEDULE_WEEKLY_MAINTENANCE), catchup=False,
     max_active_runs=1, tags=["maintenance"], default_args=default_args("maintenance"), doc_md=__doc__,
     description="Sundays 02:00 IST: DB upkeep, render cleanup, retention, backup, dependency drift (as of run date)",
     params={"dry_run": Param(False, type="boolean",
                              description="Report what every step would do (vacuum, reindex, archive, render "
                                          "cleanup, airflow db clean, backup) and change nothing.")})
def weekly_maintenance():
    from include.maintenance import tasks as m

    @task(pool=config.POOL_DB_MAINTENANCE)  # one DB-heavy step at a time, never the senders' slots
    def run_database_upkeep() -> dict:
        return m.run_db_upkeep(get_current_context())

    @task
    def clean_render_cache() -> dict:
        return m.run_clean_render_cache(get_current_context())

    @task(pool=config.POOL_DB_MAINTENANCE)  # one DB-heavy step at a time, never the senders' slots
    def archive_old_rows() -> dict:
        return m.run_archive_old_rows(get_current_context())

    @task
    def clean_airflow_metadata() -> dict:
        return m.run_clean_airflow_metadata(get_current_context())

    @task(pool=config.POOL_DB_MAINTENANCE)  # one DB-heavy step at a time, never the senders' slots
    def backup_app_db() -> dict:
        return m.run_backup(get_current_context(), "weekly", "weekly_maintenance")

    @task(pool=config.POOL_DB_MAINTENANCE)  # one DB-heavy step at a time, never the senders' slots
    def verify_backup_restore(backup: dict) -> dict:
        return m.run_verify_backup(backup, get_current_context(), "weekly_maintenance")

    @task
    def check_dependency_drift() -> dict:
        return m.run_dependency_check(get_current_context())

    @task(trigger_rule="all_done")
    def publish_maintenance_summary(reported: dict) -> dict:
        return m.publish_summary("Weekly maintenance", reported, get_current_context())

    # Back up before anything is deleted; upkeep last so it sees the post-cleanup tables.
    backup = backup_app_db()
    verified = verify_backup_restore(backup)
    archived, renders, metadata = archive_old_rows(), clean_render_cache(), clean_airflow_metadata()
    upkeep = run_database_upkeep()
    verified >> [archived, renders, metadata]
    archived >> upkeep
    publish_maintenance_summary({
        "run_database_upkeep": upkeep, "clean_render_cache": renders, "archive_old_rows": archived,
        "clean_airflow_metadata": metadata, "backup_app_db": backup, "verify_backup_restore": verified,
        "check_dependency_drift": check_dependency_drift()})


weekly_maintenance()
