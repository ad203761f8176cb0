"""
### Kill switch: stop all WhatsApp sending now — `ops_pause_sending`

Runbook *"Stop all WhatsApp sending now"*. Serves no particular date: the switch stops every sender.

Trigger from the UI with a **reason** (required; it goes into `audit_log` with your user name).
The delivery senders poll the switch every 0.25 s on a lane of their own (a hanging Slack or Graph call
cannot delay it): a pause stops new sends within a second and leaves the remaining rows queued.
`ops_resume_sending` continues them without sending anything twice.

The pause is announced on the on-call Slack channel as a **P1** (sending stopped is an incident) with who,
when and why. A switch still paused at 05:50 is a P1 finding of `pre_delivery_check`
(`check_system_health`), so nobody starts the day unaware that nothing will be sent.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from include.core.dagkit import default_args, task


@dag(dag_id="ops_pause_sending", schedule=None, catchup=False, tags=["ops", "kill-switch"],
     default_args=default_args(retries=1), doc_md=__doc__, max_active_runs=1,
     description="Kill switch: stop all WhatsApp sending now (any date), audited, P1 to Slack",
     params={"reason": Param("", type="string", minLength=3, title="Reason",
                             description="Why sending is being paused. Recorded in the audit log.")})
def ops_pause_sending():
    @task
    def pause_sending() -> dict:
        from include.operations.tasks import pause_or_resume_sending

        return pause_or_resume_sending(True, get_current_context())

    pause_sending()


ops_pause_sending()
