"""
### Settle sends of unknown outcome — `ops_settle_unknown_deliveries`

Runbook: *"Messages whose fate is unknown"*. A send whose request timed out or whose sender died, and for
which no status webhook ever arrived, is never resent automatically (it may have been accepted). The
post-delivery report lists them (`detect_stuck_messages`, P1). Here an operator decides, for a business date:

* **`resend`**: put them back in the queue; the next `delivery_fanout` run for today, or
  `ops_backfill_delivery` for a past date, sends them. Someone may get the pack twice if WhatsApp had
  accepted the lost request: choose this when a missing pack is worse.
* **`mark_failed`**: close them as failed without sending.

The automatic rule runs once more first (webhooks that arrived since are used). A **reason** is required
and goes to `audit_log` with your user name; a bad date, decision or empty reason fails the run at once
and changes nothing.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from include.core.dagkit import date_param, default_args, task
from include.core.dates import OPERATOR


@dag(dag_id="ops_settle_unknown_deliveries", schedule=None, catchup=False, tags=["ops", "delivery"],
     default_args=default_args(retries=1), doc_md=__doc__, max_active_runs=1,
     description="Operator: resend or close sends of unknown outcome (given date, default today), audited",
     params={
         "business_date": date_param(OPERATOR),
         "decision": Param("mark_failed", type="string", enum=["mark_failed", "resend"], title="Decision"),
         "reason": Param("", type="string", minLength=3, title="Reason", description="Recorded in the audit log."),
     })
def ops_settle_unknown_deliveries():
    @task
    def settle_unknown_sends() -> dict:
        from include.operations.tasks import settle_unknown_deliveries

        return settle_unknown_deliveries(get_current_context())

    settle_unknown_sends()


ops_settle_unknown_deliveries()
