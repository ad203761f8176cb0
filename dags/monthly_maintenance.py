"""
### Monthly maintenance — first Sunday of the month, 01:00 IST

Runbook *"Monthly maintenance"*. The timetable is `CronTriggerTimetable("0 1 * * 0#1")`: the `#1`
(first weekday of that kind in the month) makes it fire only on the first Sunday (tested over a year).

| Task | Runbook step |
|---|---|
| `run_dr_drill` | Restores the newest backup whose restore verification passed (none: refused, P1) into a fresh database, measures RTO and RPO against 60 min / 15 min, dry-runs planning on it and checks it reproduces production's plan; recorded in `dr_drills` |
| `review_compliance` | Every message sent last month: approved/fallback pack with disclaimer, QC-passed render, consent, no DNC at send time; operator actions audited. Violations row by row (CSV) |
| `plan_capacity` | Monthly growth of advisors, messages, peak msg/s vs throughput, DB size (charted); projects when numbers/tier run out and how many numbers are needed |
| `refresh_templates` | Templates with LOW quality or nearing a pause get a new variant submitted (template-creation endpoint) |
| `refresh_fallback_library` | Retires evergreen packs older than N months or used more than K times; P1 if too few fresh ones remain |
| `publish_maintenance_summary` | One Slack summary |
"""
from __future__ import annotations

from airflow.sdk import dag, get_current_context

from include.core import config
from include.core.dagkit import date_param, default_args, ist_cron, task
from include.core.dates import TODAY


@dag(dag_id="monthly_maintenance", schedule=ist_cron(config.SCHEDULE_MONTHLY_MAINTENANCE), catchup=False,
     max_active_runs=1, tags=["maintenance"], default_args=default_args("maintenance"), doc_md=__doc__,
     description="1st Sunday 01:00 IST: DR drill, compliance audit, capacity, library refresh (last month)",
     params={"business_date": date_param(TODAY, "The review covers the month before this date.")})
def monthly_maintenance():
    from include.maintenance import tasks as m

    @task(pool=config.POOL_DB_MAINTENANCE)  # one DB-heavy step at a time, never the senders' slots
    def run_dr_drill() -> dict:
        return m.run_dr_drill(get_current_context())

    @task
    def review_compliance() -> dict:
        return m.run_compliance_review(get_current_context())

    @task
    def plan_capacity() -> dict:
        return m.run_capacity_planning(get_current_context())

    @task
    def refresh_templates() -> dict:
        return m.run_template_refresh(get_current_context())

    @task
    def refresh_fallback_library() -> dict:
        return m.run_fallback_refresh(get_current_context())

    @task(trigger_rule="all_done")
    def publish_maintenance_summary(reported: dict) -> dict:
        return m.publish_summary("Monthly maintenance", reported, get_current_context())

    publish_maintenance_summary({
        "run_dr_drill": run_dr_drill(), "review_compliance": review_compliance(), "plan_capacity": plan_capacity(),
        "refresh_templates": refresh_templates(), "refresh_fallback_library": refresh_fallback_library()})


monthly_maintenance()
