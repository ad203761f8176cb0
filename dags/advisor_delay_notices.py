"""
### Advisor delay notices and the status page — `advisor_delay_notices`

Runbook step "tell advisors about a delay" (issue 17 §6), every 5 minutes (IST cron):

* `notify_delayed_advisors`: a segment is **late** when more than 15 min (`FA_ADVISOR_NOTICE_LATE_AFTER_MIN`) have
  passed since the 06:00 slot and some of its planned rows are still unsent (not queued yet, queued, sending,
  unknown). Every **affected advisor** (planned in a late segment, message not yet accepted, still contactable:
  never DNC, opted-out or inactive advisors) gets an in-app notice (`advisor_notice_outbox`) and an email
  (`advisor_notice_emails`, through the `advisor_email` SMTP connection) with an ETA, and again every 15 min
  (`FA_ADVISOR_NOTICE_EVERY_MIN`) while still affected; nothing more once their message is accepted or the segment
  recovers. The **ETA** is the unsent rows over the send rate of the last 5 min; with sending paused (kill switch)
  or stalled the notice says so and promises the next update instead. Advisors without an email address get the
  in-app notice only (the task's return value counts them). A retried or overlapping run never creates a second
  notice for the same step (unique key); emails are sent after commit and failures are retried by the next runs
  (`FA_ADVISOR_NOTICE_EMAIL_MAX_ATTEMPTS`, then a P2).
* `publish_status_page` (runs even if the notices failed): `status/status.json|html` (internal: open incidents,
  late segments, ETA, kill switch, notices sent) and `status/advisor_status.json|html` (advisor-facing, no
  internals) under the data root; "all normal" when nothing is late.

**On call:** check `status/status.html`; to see who was told what, query `advisor_notice_outbox` /
`advisor_notice_emails` for the date (status `failed` rows carry `last_error`). Pausing sending (ops_pause_sending)
changes the notices to "sending is paused, next update by HH:MM". The `as_of` Param replays a moment (tests,
drills); leave it empty in production.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from include.core.dagkit import default_args, ist_cron, task


@dag(dag_id="advisor_delay_notices", schedule=ist_cron("*/5 * * * *"), catchup=False, max_active_runs=1,
     tags=["incidents", "advisors", "notices"], default_args=default_args("incident", retries=2), doc_md=__doc__,
     description="Every 5 min: notify advisors of late segments (in-app + email, ETA) and publish the status page",
     params={"as_of": Param(None, type=["null", "string"], title="As of (replay)",
                            description="ISO 8601 time with offset, e.g. 2026-12-01T06:16:00+05:30. Empty (always "
                                        "in production): now, and the run's date in IST.")})
def advisor_delay_notices():
    @task
    def notify_delayed_advisors() -> dict:
        from include.advisor_notices.tasks import notify_delayed_advisors as notify

        return notify(get_current_context())

    @task(trigger_rule="all_done")
    def publish_status_page() -> dict:
        from include.advisor_notices.tasks import publish_status_page as publish

        return publish(get_current_context())

    notify_delayed_advisors() >> publish_status_page()


advisor_delay_notices()
