"""
### Delivery fan-out — 06:00 IST

Runbook *"06:00–06:05 delivery"*. Sends today's plan (written by `pre_delivery_check`) over WhatsApp.

| Task | What it does |
|---|---|
| `check_start_time` | A *scheduled* run that starts more than 30 min after 06:00 (scheduler down, stack started later: Airflow still runs the missed slot) pages P0 and asks on-call; otherwise straight to `prepare_send_queue` |
| `ask_on_call_to_send_late` (human-in-the-loop) | Waits in the UI's **Required Actions**: *Send now* or *Skip today*. No answer within 20 min (`FA_FANOUT_LATE_DECISION_TIMEOUT_S`) is *Skip today*: nothing is sent without a person |
| `act_on_on_call_answer` / `skip_late_run` | A person's *Send now* goes on to `prepare_send_queue` (audited with their name); a skip sends nothing, is audited (who, or "nobody (timeout)") and points to `ops_backfill_delivery` |
| `prepare_send_queue` | A manual run delivers today (IST) only: a past date is refused with a pointer to `ops_backfill_delivery` (reason, audit), a future date is refused. A late scheduled run gets here only with a person's *Send now*. Then queues every plan row as a `deliveries` row (idempotent) and lists the sender units: one per shard (its segment groups in send order), or one per (shard, segment) on a number of ≥ 300 msg/s; at most 64 |
| `send_shard` (mapped; the label shows number, shard and segment groups) | Streams its rows in claimed batches, sends concurrently inside the number's token bucket (shared across live senders, adaptive on 130429), retries retryable errors with backoff (131056: 4^x s for that recipient), never retries permanent ones, re-checks DNC/opt-out at send time, rotates a RED or policy-blocked number to the hot spare, switches a paused template to its backup (on the API's rejection or at once on Meta's template-status webhook), rotates on a quality webhook, honours the kill switch within a second, never resends a send of unknown outcome on a guess, logs progress every 5 s, pages on >2% failures in 2 min, <95% success for 2 min, or a 190; a unit that stops with rows queued pages P0 and fails |
| `validate_delivery_sla` | ≥ 99% of the plan accepted within 5 minutes, else a P0 with counts by reason; final summary to Slack. Runs even when a sender failed; skipped when an operator's request was refused and nothing was queued, or when a late start was skipped |
| `fail_run_if_a_task_failed` | Runs only when `prepare_send_queue` or a sender failed, and fails, so the run is red (the SLA check after a failed sender is still green); decided beside the SLA check, so a green run ends with it |

**Idempotency**: the key is (business date, advisor), sent as `biz_opaque_callback_data`. A task retry, a clear, a rerun or
a second run for the same date never sends twice; a request whose outcome is unknown is reconciled against status evidence first.
**Backfill**: `ops_backfill_delivery` (a required past date and reason, audited) runs the same tasks for that date:
a missing plan is built first and rows already sent are skipped, so a rerun sends nothing twice.
"""
from __future__ import annotations

from airflow.sdk import Param, dag

from include.core import config
from include.core.dagkit import deadline_alert, date_param, default_args, ist_cron
from include.core.dates import TODAY



@dag(dag_id="delivery_fanout", schedule=ist_cron(config.SCHEDULE_DELIVERY_FANOUT), catchup=False,
     max_active_runs=1, tags=["delivery"], default_args=default_args("delivery"),
     deadline=deadline_alert(config.DEADLINE_DELIVERY_FANOUT_MIN, "06:05 IST",
                             "the 5-minute window is over: see validate_delivery_sla and the cockpit; finish with ops_backfill_delivery once the cause is fixed"), doc_md=__doc__,
     description="06:00 IST: send today's plan over WhatsApp (today's date)",
     params={
         "business_date": date_param(TODAY, "Only today is accepted here: a past date goes through "
                                            "ops_backfill_delivery (audited)."),
         "honour_jitter": Param(True, type="boolean", description="Spread sends over the plan's jitter offsets."),
     })
def delivery_fanout():
    from include.delivery.tasks import fanout_tasks, late_start_tasks

    prepare_send_queue, send_shard, validate_delivery_sla, fail_run = fanout_tasks(backfill=False)
    check_start_time, ask_on_call, act_on_answer, skip_late_run = late_start_tasks()
    start = check_start_time()
    answer = act_on_answer()
    # Reached from an on-time start, or from a person's "Send now"; skipped on "Skip today".
    units = prepare_send_queue.override(trigger_rule="none_failed_min_one_success")()
    start >> [ask_on_call, units]
    skipped = skip_late_run()
    ask_on_call >> answer >> [units, skipped]
    sends = send_shard.expand(unit=units)
    validated = validate_delivery_sla()
    [sends, skipped] >> validated  # all_done: after the senders, or after a skip was recorded
    # Beside the SLA check, not after it: a failed SLA check is a red leaf itself, and waiting for it would add a
    # scheduler pass to every run's end only to skip this task.
    [units, sends] >> fail_run()


delivery_fanout()
