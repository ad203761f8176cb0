"""
### Kill switch: `ops_pause_sending` / `ops_resume_sending`

Runbook: *"Stop all WhatsApp sending now"* and *"Resume sending"*.

Trigger from the UI with a **reason** (required; it goes into `audit_log` with your user name).
The delivery senders poll the switch every 0.25 s on a lane of their own (a hanging Slack or Graph call
cannot delay it): a pause stops new sends within a second and leaves
the remaining rows queued; resume continues them without sending anything twice.

Each flip is announced on the on-call Slack channel with who, when and why: a pause is a **P1**
(sending stopped is an incident), a resume is info. A switch still paused at 05:50 is a P1 finding of
`pre_delivery_check` (`check_system_health`), so nobody starts the day unaware that nothing will be sent.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from include.core.dagkit import acting_user, default_args, fail_fast_on_bad_input

REASON = Param("", type="string", minLength=3, title="Reason",
               description="Why sending is being paused/resumed. Recorded in the audit log.")


def _flip(paused: bool) -> dict:
    from include.core.db import get_engine
    from include.delivery.kill_switch import announce_sending_change, set_sending_paused

    ctx = get_current_context()
    with fail_fast_on_bad_input():
        state = set_sending_paused(get_engine(), paused, ctx["params"]["reason"], acting_user(ctx))
    announce_sending_change(state, ctx)
    return {"paused": state.paused, "reason": state.reason, "changed_by": state.changed_by}


@dag(dag_id="ops_pause_sending", schedule=None, catchup=False, tags=["ops", "kill-switch"],
     default_args=default_args(retries=1), doc_md=__doc__, params={"reason": REASON}, max_active_runs=1,
     description="Kill switch: stop all WhatsApp sending now (any date), audited, P1 to Slack")
def ops_pause_sending():
    @task
    def pause_sending() -> dict:
        return _flip(True)

    pause_sending()


@dag(dag_id="ops_resume_sending", schedule=None, catchup=False, tags=["ops", "kill-switch"],
     default_args=default_args(retries=1), doc_md=__doc__, params={"reason": REASON}, max_active_runs=1,
     description="Kill switch: resume WhatsApp sending (any date), audited, reported to Slack")
def ops_resume_sending():
    @task
    def resume_sending() -> dict:
        return _flip(False)

    resume_sending()


ops_pause_sending()
ops_resume_sending()
