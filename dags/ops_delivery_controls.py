"""
### Operator controls for delivery: retry failures, rotate a number

* **`ops_retry_failed_deliveries`** — runbook *"Re-send failed messages"*. For a business date, re-queue only
  the deliveries that failed with a retryable code (throughput, pair rate, transient/5xx). Permanent failures
  (131026, 131047, 131049, 131050), template and policy failures are never re-queued. The next run of
  `delivery_fanout` for that date (or `ops_backfill_delivery`) sends them.
* **`ops_rotate_number`** — runbook *"Move a shard to another number"*. The target number (a hot spare:
  active, connected, not RED, serving no shard) takes over the shard the source number serves; the source
  steps down to hot spare. Senders read their shard's number every control tick, so a run in flight moves
  within one tick. Unsent plan rows and queued deliveries of the date and later dates move with the shard.

Both need a **reason** and write `audit_log` with the triggering user. A bad parameter (unknown number, a
future date, an empty reason) fails the run at once and changes nothing.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from include.core.dagkit import acting_user, default_args, fail_fast_on_bad_input

DATE = Param(None, type=["null", "string"], format="date", title="Business date",
             description="YYYY-MM-DD in IST; empty means today.")
REASON = Param("", type="string", minLength=3, title="Reason", description="Recorded in the audit log.")


@dag(dag_id="ops_retry_failed_deliveries", schedule=None, catchup=False, tags=["ops", "delivery"],
     default_args=default_args(retries=1), doc_md=__doc__, max_active_runs=1,
     description="Operator: re-queue retryable failed sends (given date, default today), audited",
     params={"business_date": DATE, "reason": REASON})
def ops_retry_failed_deliveries():
    @task
    def requeue_retryable_failures() -> dict:
        from include.core.dagkit import operator_date
        from include.core.db import get_engine
        from include.operations.actions import retry_failed_deliveries

        ctx = get_current_context()
        with fail_fast_on_bad_input():
            return retry_failed_deliveries(get_engine(), operator_date(ctx), ctx["params"]["reason"],
                                           acting_user(ctx))

    requeue_retryable_failures()


@dag(dag_id="ops_rotate_number", schedule=None, catchup=False, tags=["ops", "delivery"],
     default_args=default_args(retries=1), doc_md=__doc__, max_active_runs=1,
     description="Operator: move a shard to a hot-spare number (given date onwards, default today), audited",
     params={"business_date": DATE,
             "from_number": Param("", type="string", pattern="^[0-9]{5,20}$", title="From phone_number_id"),
             "to_number": Param("", type="string", pattern="^[0-9]{5,20}$", title="To phone_number_id"),
             "reason": REASON})
def ops_rotate_number():
    @task
    def move_pending_rows() -> dict:
        from include.core.dagkit import operator_date
        from include.core.db import get_engine
        from include.delivery.numbers import move_between_numbers

        ctx = get_current_context()
        p = ctx["params"]
        with fail_fast_on_bad_input():
            from include.delivery.kill_switch import require_reason

            return move_between_numbers(get_engine(), operator_date(ctx), p["from_number"], p["to_number"],
                                        require_reason(p["reason"]), acting_user(ctx))

    move_pending_rows()


ops_retry_failed_deliveries()
ops_rotate_number()
