"""Airflow task entry points of the delivery runbooks: the 05:50 pre-delivery check and the fan-out's tasks.
Each takes the task context (and what the DAG wiring hands it), resolves the business date by its DAG's rule,
and calls the plain functions of include/delivery/, which know nothing of Airflow."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from include.core import config
from include.core.alerting import RunRef, Severity
from include.core.checks import CheckResult, collect, finish, summarise
from include.core.dates import TODAY, business_date

PRE_DELIVERY_DAG_ID = "pre_delivery_check"


# -- pre_delivery_check (05:50 IST): each check records its result and returns it for the summary ----------------
def _record(result: CheckResult, business_date_: dt.date, context: Mapping[str, Any]) -> dict:
    from include.core.db import get_engine

    return finish(get_engine(), result, business_date_, context, PRE_DELIVERY_DAG_ID)


def _engine_and_client():
    from include.core.db import get_engine
    from include.whatsapp.client import WhatsAppHook

    return get_engine(), WhatsAppHook().get_conn()


def check_system_health(context: Mapping[str, Any]) -> dict:
    from include.delivery.pre_delivery_check import system_health

    engine, client = _engine_and_client()
    with client:
        return _record(system_health(engine, client), business_date(context, TODAY), context)


def check_whatsapp_numbers(context: Mapping[str, Any]) -> dict:
    from include.core.dagkit import acting_user
    from include.delivery.pre_delivery_check import whatsapp_numbers

    engine, client = _engine_and_client()
    day = business_date(context, TODAY)
    with client:
        return _record(whatsapp_numbers(engine, client, day, acting_user(context)), day, context)


def check_number_ramps(context: Mapping[str, Any]) -> dict:
    """Quality-drop cooldowns: record drops, judge each ramp for the day, arrange covers (before the plan)."""
    from include.core.dagkit import acting_user
    from include.delivery.pre_delivery_check import number_ramps

    engine, client = _engine_and_client()
    day = business_date(context, TODAY)
    with client:
        return _record(number_ramps(engine, client, day, acting_user(context)), day, context)


def check_templates(context: Mapping[str, Any]) -> dict:
    from include.delivery.pre_delivery_check import template_check

    engine, client = _engine_and_client()
    with client:
        result, chosen = template_check(engine, client)
    out = _record(result, business_date(context, TODAY), context)
    out["chosen_templates"] = chosen
    return out


def check_content_ready(context: Mapping[str, Any]) -> dict:
    from include.core.db import get_engine
    from include.delivery.pre_delivery_check import content_ready

    day = business_date(context, TODAY)
    return _record(content_ready(get_engine(), day), day, context)


def prepare_delivery_queue(template_result: dict | None, context: Mapping[str, Any]) -> dict:
    """Build the plan with the templates `check_templates` chose, and say what the `delivery_plan` asset carries."""
    from include.core.db import get_engine
    from include.delivery.pre_delivery_check import prepare_queue

    day = business_date(context, TODAY)
    window = int((context.get("params") or {}).get("jitter_window_s") or config.JITTER_WINDOW_SECONDS)
    result = prepare_queue(get_engine(), day, (template_result or {}).get("chosen_templates") or {}, window)
    return _record(result, day, context)


def check_spend_budget(context: Mapping[str, Any]) -> dict:
    """05:50 spend projection: today's plan x the rate card, on top of today's and this month's spend so far;
    P1 when sending it would exceed the daily or monthly budget (include/delivery/budget.py)."""
    from include.core.db import get_engine
    from include.delivery.budget import projection_check

    day = business_date(context, TODAY)
    return _record(projection_check(get_engine(), day), day, context)


def delivery_plan_extra(result: Mapping[str, Any], context: Mapping[str, Any]) -> dict:
    """What the `delivery_plan` asset event says: whose plan, and how many rows."""
    return {"business_date": str(business_date(context, TODAY)), "planned": result["facts"].get("planned", 0)}


def publish_check_summary(reported: Mapping[str, dict | None], context: Mapping[str, Any]) -> dict:
    """One Slack summary of the checks the DAG wiring hands over; a check that did not report is a P0 (the plan
    cannot be trusted), and any P0 fails the run after posting."""
    results = collect(reported, missing=Severity.P0)
    alert = summarise("Pre-delivery check", business_date(context, TODAY), results, RunRef.from_context(context))
    out = {"severity": alert.severity.value, "failed": [c.name for c in results if not c.ok]}
    if alert.severity is Severity.P0:
        # A P0 verdict is not transient: fail at once instead of retrying the summary.
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"pre-delivery check found P0 problems: {', '.join(out['failed'])}")
    return out


# -- delivery_fanout / ops_backfill_delivery: the same tasks, two date rules ------------------------------------
def fanout_date(context: Mapping[str, Any], backfill: bool, authorised: str | None = None) -> dt.date:
    """The scheduled fan-out sends today (IST, or the date an operator typed, which prepare_send_queue then holds to
    today); a backfill sends only the date `authorise_backfill` returned."""
    if not backfill:
        return business_date(context, TODAY)
    if not authorised:  # authorise_backfill refused the request: the run must show as failed, without retries
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("backfill was not authorised; see authorise_backfill")
    return dt.date.fromisoformat(authorised)


def sender_execution_timeout() -> dt.timedelta:
    """A sender may send for its hard deadline plus paused time (up to SENDER_MAX_PAUSE_S), then settles unknown
    outcomes: Airflow kills it only after all of that, with 5 minutes to spare."""
    return dt.timedelta(seconds=config.SENDER_HARD_DEADLINE_S + config.SENDER_MAX_PAUSE_S
                        + config.UNKNOWN_SETTLE_WAIT_S + 300)


def fanout_tasks(backfill: bool):
    """The fan-out's tasks, shared by `delivery_fanout` and `ops_backfill_delivery` (which differ in their date
    rule and in the guards of a scheduled run). Returned as TaskFlow tasks for the DAG files to wire."""
    from airflow.sdk import get_current_context

    from include.core.dagkit import task

    @task
    def prepare_send_queue(day: str | None = None) -> list[dict]:
        from include.delivery.fanout import run_prepare_send_queue

        ctx = get_current_context()
        return run_prepare_send_queue(ctx, fanout_date(ctx, backfill, day), scheduled_dag=not backfill)

    # Rendered from the mapped argument itself, so the UI shows the shard label while the task runs
    # (Airflow renders map_index_template before execution too, apache/airflow#57208), not only at the end.
    @task(map_index_template="{{ task.op_kwargs['unit']['label'] }}", retries=3,
          retry_delay=dt.timedelta(seconds=5), retry_exponential_backoff=0,
          pool=config.POOL_SENDERS, queue=config.QUEUE_DELIVERY, execution_timeout=sender_execution_timeout())
    def send_shard(unit: dict) -> dict:
        from include.delivery.fanout import run_send_shard

        return run_send_shard(unit, get_current_context())

    @task(trigger_rule="all_done")
    def validate_delivery_sla(day: str | None = None) -> dict:
        from include.core.db import get_engine
        from include.delivery.fanout import validate_sla

        ctx = get_current_context()
        return validate_sla(get_engine(), fanout_date(ctx, backfill, day), ctx)

    # The failed task above has already alerted: this one only turns the run red, so it alerts nobody.
    @task(trigger_rule="one_failed", on_failure_callback=None)
    def fail_run_if_a_task_failed() -> None:
        from include.delivery.fanout import fail_run_if_a_task_failed as fail

        fail(get_current_context())

    return prepare_send_queue, send_shard, validate_delivery_sla, fail_run_if_a_task_failed


# -- delivery_fanout: a late scheduled start asks on-call (human-in-the-loop) ----------------------------------
def late_start_tasks():
    """`check_start_time` → `ask_on_call_to_send_late` (HITL, Send now / Skip today, no answer = skip) →
    `act_on_on_call_answer` → `prepare_send_queue` or `skip_late_run`. Only the scheduled DAG has them."""
    from airflow.providers.standard.operators.hitl import HITLOperator
    from airflow.sdk import get_current_context

    from include.core.dagkit import HITL_RETRIES, task
    from include.core.notifiers import DecisionRequestedNotifier
    from include.delivery import late_start

    @task.branch(task_id=late_start.CHECK_TASK)
    def check_start_time() -> str:
        return late_start.check_start_time(get_current_context())

    lateness = f"ti.xcom_pull(task_ids='{late_start.CHECK_TASK}', key='lateness')"
    ask = HITLOperator(
        task_id=late_start.ASK_TASK,
        subject=f"Late fan-out: send today's packs now? ({{{{ ({lateness} or {{}}).get('minutes') }}}} min late)",
        body=f"{{{{ ({lateness} or {{}}).get('text', '') }}}}",
        options=late_start.OPTIONS, defaults=late_start.DEFAULT,
        response_timeout=dt.timedelta(seconds=config.FANOUT_LATE_DECISION_TIMEOUT_S),
        notifiers=[DecisionRequestedNotifier(
            title="On-call: a late scheduled fan-out waits for your decision (Send now / Skip today)",
            if_unanswered=f"after {config.FANOUT_LATE_DECISION_TIMEOUT_S // 60} min: Skip today, nothing sent")],
        execution_timeout=dt.timedelta(minutes=5), **HITL_RETRIES)

    @task.branch(task_id=late_start.ACT_TASK)
    def act_on_on_call_answer() -> str:
        return late_start.act_on_answer(get_current_context())

    @task(task_id=late_start.SKIP_TASK)
    def skip_late_run() -> dict:
        from include.core.db import get_engine

        ctx = get_current_context()
        return late_start.skip_late_run(get_engine(), ctx, business_date(ctx, TODAY))

    return check_start_time, ask, act_on_on_call_answer, skip_late_run
