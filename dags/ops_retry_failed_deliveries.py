"""
### Re-send failed messages — `ops_retry_failed_deliveries`

Runbook *"Re-send failed messages"*. For a business date (**empty means today in IST; a future date is
refused**), re-queue only the deliveries that failed with a retryable code (throughput, pair rate,
transient/5xx), by the same error table the sender uses (`include/delivery/fanout/error_policy.py`).
Permanent failures (131026, 131047, 131049, 131050), template and policy failures and unknown codes are
never re-queued. The next run of `delivery_fanout` for today, or `ops_backfill_delivery` for a past date,
sends them.

Needs a **reason**; writes `audit_log` with the triggering user. A bad parameter fails the run at once,
changes nothing and does not page on-call.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from include.core.dagkit import date_param, default_args, task
from include.core.dates import OPERATOR


@dag(dag_id="ops_retry_failed_deliveries", schedule=None, catchup=False, tags=["ops", "delivery"],
     default_args=default_args(retries=1), doc_md=__doc__, max_active_runs=1,
     description="Operator: re-queue retryable failed sends (given date, default today), audited",
     params={"business_date": date_param(OPERATOR),
             "reason": Param("", type="string", minLength=3, title="Reason", description="Recorded in the audit log.")})
def ops_retry_failed_deliveries():
    @task
    def requeue_retryable_failures() -> dict:
        from include.operations.tasks import retry_failed_deliveries

        return retry_failed_deliveries(get_current_context())

    requeue_retryable_failures()


ops_retry_failed_deliveries()
