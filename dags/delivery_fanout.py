"""
### Delivery fan-out — 06:00 IST

Runbook *"06:00–06:05 delivery"*. Sends today's plan (written by `pre_delivery_check`) over WhatsApp.

| Task | What it does |
|---|---|
| `prepare_send_queue` | A manual run delivers today (IST) only: a past date is refused with a pointer to `ops_backfill_delivery` (reason, audit), a future date is refused. A *scheduled* run that starts more than 30 min after 06:00 (scheduler down, stack started later: Airflow still runs the missed slot) sends nothing and pages P0: use `ops_backfill_delivery`. Then queues every plan row as a `deliveries` row (idempotent) and lists the sender units: one per shard (its segment groups in send order), or one per (shard, segment) on a number of ≥ 300 msg/s; at most 64 |
| `send_shard` (mapped; the label shows number, shard and segment groups) | Streams its rows in claimed batches, sends concurrently inside the number's token bucket (shared across live senders, adaptive on 130429), retries retryable errors with backoff (131056: 4^x s for that recipient), never retries permanent ones, re-checks DNC/opt-out at send time, rotates a RED or policy-blocked number to the hot spare, switches a paused template to its backup (on the API's rejection or at once on Meta's template-status webhook), rotates on a quality webhook, honours the kill switch within a second, never resends a send of unknown outcome on a guess, logs progress every 5 s, pages on >2% failures in 2 min, <95% success for 2 min, or a 190; a unit that stops with rows queued pages P0 and fails |
| `validate_delivery_sla` | ≥ 99% of the plan accepted within 5 minutes, else a P0 with counts by reason; final summary to Slack. Runs even when a sender failed; skipped when an operator's request was refused and nothing was queued |
| `fail_run_if_a_task_failed` | Runs only when a task above failed, and fails, so the run is red (the SLA check after a failed sender is still green) |

**Idempotency**: the key is (business date, advisor), sent as `biz_opaque_callback_data`. A task retry, a clear, a rerun or
a second run for the same date never sends twice; a request whose outcome is unknown is reconciled against status evidence first.
**Backfill**: `ops_backfill_delivery` (a required past date and reason, audited) runs the same tasks for that date:
a missing plan is built first and rows already sent are skipped, so a rerun sends nothing twice.
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, get_current_context, task

from include.core import config
from include.core.dagkit import business_date, default_args, ist_cron



BACKFILL_DOC = """
### Deliver a past business date — `ops_backfill_delivery`

Runbook *"Deliver a past business date"*: the 06:00 fan-out did not run or did not finish for a day
(scheduler down, kill switch held, a late scheduled run refused with a P0) and that day's packs must
still go out. The scheduled `delivery_fanout` only ever delivers today; this DAG is the one way to send
for another date.

| Param | Meaning |
|---|---|
| `business_date` | Required, `YYYY-MM-DD` (IST). Today or a past date; a future date is refused |
| `reason` | Required (at least 3 characters); recorded in `audit_log` with your user name |
| `honour_jitter` | Spread sends over the plan's jitter offsets (default off: a backfill sends as fast as allowed) |

`authorise_backfill` validates the request and writes the audit row **before** anything is sent. A date
whose deliveries were already archived by retention (`weekly_maintenance`) is **refused**: past retention
"already sent" can no longer be checked, so sending could message advisors twice. A bad parameter fails the
run at once, without retries, and is reported in the task log (it does not page on-call).

Then the same tasks as the fan-out run for that date (`prepare_send_queue`, `send_shard` mapped,
`validate_delivery_sla`): a missing plan is built first, rows already sent are skipped (same idempotency
key), so rerunning it sends nothing twice. The kill switch, DNC re-check and rate limits all apply.

**Not Airflow's Backfill.** Airflow's generic backfill (`airflow backfill create`, the UI's *Backfill*)
would create runs of `delivery_fanout` for a range of past schedule slots: no reason, no audit row, no
archived-date refusal, and a whole range at once. Such a run is refused in `prepare_send_queue` and sends
nothing; use this DAG: one authorised, audited date at a time.
"""


def _fanout(resolve_date, scheduled_dag: bool):
    """The fan-out tasks, shared by the scheduled DAG and the operator backfill."""

    @task
    def prepare_send_queue(day: str | None = None) -> list[dict]:
        from include.delivery.fanout import run_prepare_send_queue

        ctx = get_current_context()
        return run_prepare_send_queue(ctx, resolve_date(ctx, day), scheduled_dag)

    # Rendered from the mapped argument itself, so the UI shows the shard label while the task runs
    # (Airflow renders map_index_template before execution too, apache/airflow#57208), not only at the end.
    @task(map_index_template="{{ task.op_kwargs['unit']['label'] }}", retries=3,
          retry_delay=dt.timedelta(seconds=5), retry_exponential_backoff=0)
    def send_shard(unit: dict) -> dict:
        from include.delivery.fanout import run_send_shard

        return run_send_shard(unit, get_current_context())

    @task(trigger_rule="all_done")
    def validate_delivery_sla(day: str | None = None) -> dict:
        from include.core.db import get_engine
        from include.delivery.fanout import validate_sla

        ctx = get_current_context()
        return validate_sla(get_engine(), resolve_date(ctx, day), ctx)

    # The failed task above has already alerted: this one only turns the run red, so it alerts nobody.
    @task(trigger_rule="one_failed", on_failure_callback=None)
    def fail_run_if_a_task_failed() -> None:
        from include.delivery.fanout import fail_run_if_a_task_failed as fail

        fail(get_current_context())

    return prepare_send_queue, send_shard, validate_delivery_sla, fail_run_if_a_task_failed


def _run_date(ctx, day):
    return business_date(ctx)


def _backfill_date(ctx, day):
    if not day:  # authorise_backfill refused the request: the run must show as failed, without retries
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("backfill was not authorised; see authorise_backfill")
    return dt.date.fromisoformat(day)


@dag(dag_id="delivery_fanout", schedule=ist_cron(config.SCHEDULE_DELIVERY_FANOUT), catchup=False,
     max_active_runs=1, tags=["delivery"], default_args=default_args(), doc_md=__doc__,
     description="06:00 IST: send today's plan over WhatsApp (today's date)",
     params={
         "business_date": Param(None, type=["null", "string"], format="date",
                                description="Leave empty for today in IST. Only today is accepted here: "
                                            "a past date goes through ops_backfill_delivery (audited)."),
         "honour_jitter": Param(True, type="boolean", description="Spread sends over the plan's jitter offsets."),
     })
def delivery_fanout():
    prepare_send_queue, send_shard, validate_delivery_sla, fail_run = _fanout(_run_date, scheduled_dag=True)
    units = prepare_send_queue()
    sends = send_shard.expand(unit=units)
    validated = validate_delivery_sla()
    sends >> validated
    [units, sends, validated] >> fail_run()


@dag(dag_id="ops_backfill_delivery", schedule=None, catchup=False, max_active_runs=1, tags=["ops", "delivery"],
     default_args=default_args(retries=1), doc_md=BACKFILL_DOC,
     description="Operator: deliver a past business date (the date you give), audited",
     params={
         "business_date": Param(type="string", format="date", description="The past business date to deliver."),
         "reason": Param("", type="string", minLength=3, description="Recorded in the audit log."),
         "honour_jitter": Param(False, type="boolean"),
     })
def ops_backfill_delivery():
    @task
    def authorise_backfill() -> str:
        from include.core.dagkit import acting_user, fail_fast_on_bad_input
        from include.core.db import get_engine
        from include.operations.actions import authorise_backfill as authorise

        ctx = get_current_context()
        with fail_fast_on_bad_input():
            return authorise(get_engine(), ctx["params"]["business_date"], ctx["params"]["reason"],
                             acting_user(ctx))["business_date"]

    prepare_send_queue, send_shard, validate_delivery_sla, fail_run = _fanout(_backfill_date, scheduled_dag=False)
    day = authorise_backfill()
    units = prepare_send_queue(day)
    sends = send_shard.expand(unit=units)
    validated = validate_delivery_sla(day)
    sends >> validated
    [units, sends, validated] >> fail_run()


delivery_fanout()
ops_backfill_delivery()
