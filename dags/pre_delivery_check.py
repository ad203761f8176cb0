"""
### Pre-delivery check — 05:50 IST

Runbook *"05:50 pre-delivery check"*. For today's business date (IST, from `run_after`):

| Task | Runbook step |
|---|---|
| `check_system_health` | App DB round trip and pool, render storage writable, WhatsApp API answers with a valid token; the kill switch left paused is a P1 (who paused it, when, why) |
| `check_whatsapp_numbers` | Quality per number (YELLOW = P1; RED rotates its shard to the hot spare and pages), status, throughput, messaging tier vs today's recipients |
| `check_number_ramps` | Quality-drop recovery plans: a new YELLOW/RED drop opens a 48-72 h cooldown (content review written, backup template preferred, canary and re-sends paused on it); each ramp steps 25→50→75→100% per GREEN day; the hot spare covers the overflow |
| `check_templates` | Every needed template APPROVED; PAUSED/DISABLED switches to the approved backup (P1), none left = P0 |
| `check_content_ready` | Approval queue empty; every due advisor has a QC-passed render or an evergreen fallback (assigned here if missing) |
| `prepare_delivery_queue` | Writes `delivery_plan` (eligible advisors only, 4 segment groups, balanced stable shards, jitter); emits the `delivery_plan` asset |
| `check_spend_budget` | Today's plan x the INR rate card, on top of today's and this month's spend (from status webhooks' pricing): P1 when it would exceed the daily or monthly budget |
| `publish_check_summary` | One Slack summary; the worst severity decides paging; the run fails on any P0 |

Every result is also stored in `check_results`. Rebuilding the plan is idempotent and never touches rows already sent.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from include.core import config
from include.core.assets import DELIVERY_PLAN
from include.core.dagkit import date_param, deadline_alert, default_args, ist_cron, task
from include.core.dates import TODAY


@dag(dag_id="pre_delivery_check", schedule=ist_cron(config.SCHEDULE_PRE_DELIVERY_CHECK), catchup=False,
     max_active_runs=1, tags=["delivery", "checks"], default_args=default_args("delivery"),
     deadline=deadline_alert(config.DEADLINE_PRE_DELIVERY_CHECK_MIN, "05:58 IST",
                             "the fan-out starts at 06:00 on a plan that may be missing: check the run, then decide with on-call whether to pause sending (ops_pause_sending)"), doc_md=__doc__,
     description="05:50 IST: health, numbers, templates, content, kill switch; build the plan (today's date)",
     params={
         "business_date": date_param(TODAY),
         "jitter_window_s": Param(config.JITTER_WINDOW_SECONDS, type="integer", minimum=1,
                                  maximum=config.MAX_JITTER_WINDOW_S,
                                  description="Seconds over which plan rows' send offsets are spread."),
     })
def pre_delivery_check():
    from include.delivery import tasks as t

    @task
    def check_system_health() -> dict:
        return t.check_system_health(get_current_context())

    @task
    def check_whatsapp_numbers() -> dict:
        return t.check_whatsapp_numbers(get_current_context())

    @task
    def check_number_ramps() -> dict:
        return t.check_number_ramps(get_current_context())

    @task
    def check_templates() -> dict:
        return t.check_templates(get_current_context())

    @task
    def check_content_ready() -> dict:
        return t.check_content_ready(get_current_context())

    @task(outlets=[DELIVERY_PLAN])
    def prepare_delivery_queue(template_result: dict) -> dict:
        ctx = get_current_context()
        result = t.prepare_delivery_queue(template_result, ctx)
        ctx["outlet_events"][DELIVERY_PLAN].extra = t.delivery_plan_extra(result, ctx)
        return result

    @task
    def check_spend_budget() -> dict:
        return t.check_spend_budget(get_current_context())

    @task(trigger_rule="all_done")
    def publish_check_summary(reported: dict) -> dict:
        return t.publish_check_summary(reported, get_current_context())

    health = check_system_health()
    numbers = check_whatsapp_numbers()
    templates = check_templates()
    ready = check_content_ready()
    queue = prepare_delivery_queue(templates)
    ramps = check_number_ramps()
    numbers >> ramps >> [templates, queue]
    health >> [numbers, templates, ready]
    [numbers, ready] >> queue
    spend = check_spend_budget()
    queue >> spend
    publish_check_summary({"check_system_health": health, "check_whatsapp_numbers": numbers,
                           "check_templates": templates, "check_content_ready": ready, "check_number_ramps": ramps,
                           "prepare_delivery_queue": queue, "check_spend_budget": spend})


pre_delivery_check()
