"""
### Override a number's quality-cooldown ramp — `ops_override_number_ramp`

Runbook *"WhatsApp quality drop"* (000). After a YELLOW or RED drop a number carries 0% of its normal share of the
plan for the cooldown (48–72 h), then 25 → 50 → 75 → 100 %, one step per GREEN day (the 05:50
`check_number_ramps` judges each day; the hot spare covers the overflow). Here an operator overrides it:

* **share_percent** `0`, `25`, `50`, `75` or `100`: the number carries that share from the next plan on (0 keeps
  it in cooldown; above 0 ends the waiting period and the ramp goes on from there; 100 ends the ramp);
* `end cooldown`: the number is back at 100 % now and its cover steps back to hot spare.

Needs a **reason**; writes `audit_log` (`override_number_ramp`) with the triggering user, and the ramp keeps who
and why. A number without an open cooldown, a share outside the list or an empty reason fails the run at once,
changes nothing and does not page on-call. The plan of a date already built changes when the 05:50 check
(or `prepare_delivery_queue`) runs again.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from include.core.dagkit import default_args, task


@dag(dag_id="ops_override_number_ramp", schedule=None, catchup=False, tags=["ops", "delivery"],
     default_args=default_args(retries=1), doc_md=__doc__, max_active_runs=1,
     description="Operator: set a number's quality-cooldown share or end its cooldown (any date), audited",
     params={"number": Param("", type="string", pattern="^[0-9]{5,20}$", title="phone_number_id"),
             "share_percent": Param("end cooldown", type="string", title="Share percent",
                                    enum=["0", "25", "50", "75", "100", "end cooldown"],
                                    description="The share of its normal plan volume, or end the cooldown."),
             "reason": Param("", type="string", minLength=3, title="Reason", description="Recorded in the audit log.")})
def ops_override_number_ramp():
    @task
    def override_ramp() -> dict:
        from include.operations.tasks import override_number_ramp

        return override_number_ramp(get_current_context())

    override_ramp()


ops_override_number_ramp()
