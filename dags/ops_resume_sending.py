"""
### Kill switch: resume sending — `ops_resume_sending`

Runbook *"Resume sending"*. Serves no particular date: the switch releases every sender.

Trigger from the UI with a **reason** (required; it goes into `audit_log` with your user name). Senders
still inside their run continue the rows a pause left queued, within a quarter of a second, without
sending anything twice; paused time does not use up their deadline. The resume is reported on the on-call
Slack channel (info) with who, when and why.

After a pause that outlived a run (its senders failed with rows queued), finish the date with
`ops_backfill_delivery`, or clear the failed `send_shard` tasks of today's `delivery_fanout`.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from include.core.dagkit import default_args


@dag(dag_id="ops_resume_sending", schedule=None, catchup=False, tags=["ops", "kill-switch"],
     default_args=default_args(retries=1), doc_md=__doc__, max_active_runs=1,
     description="Kill switch: resume WhatsApp sending (any date), audited, reported to Slack",
     params={"reason": Param("", type="string", minLength=3, title="Reason",
                             description="Why sending is being resumed. Recorded in the audit log.")})
def ops_resume_sending():
    @task
    def resume_sending() -> dict:
        from include.operations.tasks import pause_or_resume_sending

        return pause_or_resume_sending(False, get_current_context())

    resume_sending()


ops_resume_sending()
