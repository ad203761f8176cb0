"""
### Post-delivery report — 06:05, 06:15 and 06:30 IST

Runbook *"Post-delivery reporting"*. One run per checkpoint (`MultipleCronTriggerTimetable`); the
checkpoint follows from the run time, or from the `checkpoint` Param for a manual run (a manual run
with a `business_date` defaults to the full 06:30 report).

| Task | Runbook step |
|---|---|
| `reconcile_webhook_events` | Settles sends of unknown outcome (timeouts, killed senders) from their status webhooks or the webhook watermark, then applies stored status webhooks to `deliveries`: never backwards, read implies delivered, duplicates ignored, failures carry code and title |
| `detect_stuck_messages` | Accepted but without delivered/read/failed after 15 min (configurable); sends whose outcome is still unknown (P1, never resent automatically) |
| `compute_delivery_kpis` | Planned, accepted, delivered, read, failed by code, skipped by reason, delivery rate, latency p50/p95, delivered ≤ 5 min (SLO 95%), API p95 — overall, per segment, per number |
| `apply_alert_thresholds` | Delivery rate < 95% warning (P2), < 90% critical (P0) from 06:15; opt-out spike (> 10 in 5 min or > 3% of the last 100 sends) P1 |
| `choose_checkpoint` | Branches to the checkpoint's own task |
| `check_sla_0605` | 06:05: 99% SLA, all 4 segment groups processed, zero critical failures, quality rating held |
| `summarise_analytics_0615` | 06:15: analytics, advisors failing 3 days in a row, webhook processing lag |
| `build_daily_report_0630` | 06:30: Great Expectations checks (failures alert with sample rows), HTML report with charts, CSV of outcomes, stored with the validation result |
| `publish_checkpoint_summary` | Slack summary with the key numbers and, at 06:30, where the report is |

The receiver that fills `webhook_events` is the api-server plugin at `/whatsapp/webhook` (plugins/whatsapp_webhook.py).
"""
from __future__ import annotations

from airflow.sdk import MultipleCronTriggerTimetable, Param, dag, get_current_context

from include.core import config
from include.core.dagkit import date_param, deadline_alert, default_args, task
from include.core.dates import TODAY


@dag(dag_id="post_delivery_report",
     schedule=MultipleCronTriggerTimetable(*config.SCHEDULES_POST_DELIVERY_REPORT, timezone=config.TIMEZONE_NAME),
     catchup=False, max_active_runs=1, tags=["delivery", "reporting"], default_args=default_args("reporting"),
     deadline=deadline_alert(config.DEADLINE_POST_DELIVERY_REPORT_MIN, "5 min after its checkpoint (the 06:30 report by 06:35)",
                             "the hand-off report is late: check build_daily_report_0630 and the receiver"),
     doc_md=__doc__,
     description="06:05/06:15/06:30 IST: reconcile webhooks, KPIs, SLA, daily report (today's date)",
     params={
         "business_date": date_param(TODAY),
         "checkpoint": Param("auto", enum=["auto", "06:05", "06:15", "06:30"],
                             description="auto: from the run time (06:30 when a business_date is given)."),
     })
def post_delivery_report():
    from include.reporting import tasks as t

    @task
    def reconcile_webhook_events() -> dict:
        return t.reconcile_webhook_events(get_current_context())

    @task
    def detect_stuck_messages() -> dict:
        return t.detect_stuck_messages(get_current_context())

    @task
    def compute_delivery_kpis() -> dict:
        return t.compute_delivery_kpis(get_current_context())

    @task
    def apply_alert_thresholds(kpis: dict) -> dict:
        return t.apply_alert_thresholds(kpis, get_current_context())

    @task.branch
    def choose_checkpoint() -> str:
        from include.core.dagkit import fail_fast_on_bad_input

        with fail_fast_on_bad_input():
            return t.choose_checkpoint(get_current_context())

    @task
    def check_sla_0605(kpis: dict) -> dict:
        return t.check_sla_0605(kpis, get_current_context())

    @task
    def summarise_analytics_0615(kpis: dict) -> dict:
        return t.summarise_analytics_0615(kpis, get_current_context())

    @task
    def build_daily_report_0630() -> dict:
        return t.build_daily_report_0630(get_current_context())

    @task(trigger_rule="none_failed_min_one_success")
    def publish_checkpoint_summary(kpis: dict, reported: dict, report: dict | None) -> dict:
        return t.publish_checkpoint_summary(kpis, reported, report, get_current_context())

    reconciled = reconcile_webhook_events()
    stuck = detect_stuck_messages()
    kpis = compute_delivery_kpis()
    thresholds = apply_alert_thresholds(kpis)
    branch = choose_checkpoint()
    reconciled >> [stuck, kpis]
    [stuck, thresholds] >> branch
    sla, analytics, report = check_sla_0605(kpis), summarise_analytics_0615(kpis), build_daily_report_0630()
    branch >> [sla, analytics, report]
    publish_checkpoint_summary(kpis, {"detect_stuck_messages": stuck, "apply_alert_thresholds": thresholds,
                                      "check_sla_0605": sla, "summarise_analytics_0615": analytics}, report)


post_delivery_report()
