"""
### Move a shard to another number — `ops_rotate_number`

Runbook *"Move a shard to another number"*. The target number (a hot spare: active, connected, not RED,
serving no shard) takes over the shard the source number serves; the source steps down to hot spare.
Senders read their shard's number every control tick, so a run in flight moves within one tick. Unsent
plan rows and queued deliveries of the business date (**empty means today in IST; a future date is
refused**) and later dates move with the shard.

Needs a **reason**; writes `audit_log` with the triggering user. A bad parameter (unknown number, a future
date, an empty reason) fails the run at once, changes nothing and does not page on-call.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from include.core.dagkit import date_param, default_args, task
from include.core.dates import OPERATOR


@dag(dag_id="ops_rotate_number", schedule=None, catchup=False, tags=["ops", "delivery"],
     default_args=default_args(retries=1), doc_md=__doc__, max_active_runs=1,
     description="Operator: move a shard to a hot-spare number (given date onwards, default today), audited",
     params={"business_date": date_param(OPERATOR),
             "from_number": Param("", type="string", pattern="^[0-9]{5,20}$", title="From phone_number_id"),
             "to_number": Param("", type="string", pattern="^[0-9]{5,20}$", title="To phone_number_id"),
             "reason": Param("", type="string", minLength=3, title="Reason", description="Recorded in the audit log.")})
def ops_rotate_number():
    @task
    def move_pending_rows() -> dict:
        from include.operations.tasks import rotate_number

        return rotate_number(get_current_context())

    move_pending_rows()


ops_rotate_number()
