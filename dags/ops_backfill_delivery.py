"""
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
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from include.core.dagkit import default_args, task


@dag(dag_id="ops_backfill_delivery", schedule=None, catchup=False, max_active_runs=1, tags=["ops", "delivery"],
     default_args=default_args("delivery", retries=1), doc_md=__doc__,
     description="Operator: deliver a past business date (the date you give), audited",
     params={
         "business_date": Param(type="string", format="date", description="The past business date to deliver."),
         "reason": Param("", type="string", minLength=3, description="Recorded in the audit log."),
         "honour_jitter": Param(False, type="boolean"),
     })
def ops_backfill_delivery():
    from include.delivery.tasks import fanout_tasks

    @task
    def authorise_backfill() -> str:
        from include.operations.tasks import authorise_backfill as authorise

        return authorise(get_current_context())

    prepare_send_queue, send_shard, validate_delivery_sla, fail_run = fanout_tasks(backfill=True)
    day = authorise_backfill()
    units = prepare_send_queue(day)
    sends = send_shard.expand(unit=units)
    validated = validate_delivery_sla(day)
    sends >> validated
    [units, sends] >> fail_run()  # beside the SLA check, as in delivery_fanout


ops_backfill_delivery()
