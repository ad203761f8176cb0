"""
### Kill switch: resume sending — `ops_resume_sending`

Runbook *"Resume sending"*. Serves no particular date: the switch releases every sender.

Trigger from the UI with a **reason** (required; it goes into `audit_log` with your user name). Senders
still inside their run continue the rows a pause left queued, within a quarter of a second, without
sending anything twice; paused time does not use up their deadline. The resume is reported on the on-call
Slack channel (info) with who, when and why.

**A stop by the spend budget** (the kill switch's cause is `budget`, the approvers were paged): resuming also
needs a **budget override reason** — why sending may go on past the daily or monthly budget. Without it the run
is refused and nothing changes; with it the override is recorded (`budget_overrides`, the audit row) and the
guard does not stop sending again for that budget's period (the day, or the month).

After a pause that outlived a run (its senders failed with rows queued), finish the date with
`ops_backfill_delivery`, or clear the failed `send_shard` tasks of today's `delivery_fanout`.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from include.core.dagkit import default_args, task


@dag(dag_id="ops_resume_sending", schedule=None, catchup=False, tags=["ops", "kill-switch"],
     default_args=default_args(retries=1), doc_md=__doc__, max_active_runs=1,
     description="Kill switch: resume WhatsApp sending (any date), audited, reported to Slack",
     params={"reason": Param("", type="string", minLength=3, title="Reason",
                             description="Why sending is being resumed. Recorded in the audit log."),
             "budget_override_reason": Param(
                 "", type="string", title="Budget override reason",
                 description="Only when the spend budget stopped sending: why sending may go on past the "
                             "budget (audited). Leave empty otherwise.")})
def ops_resume_sending():
    @task
    def resume_sending() -> dict:
        from include.operations.tasks import pause_or_resume_sending

        return pause_or_resume_sending(False, get_current_context())

    resume_sending()


ops_resume_sending()
