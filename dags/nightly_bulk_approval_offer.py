"""
### The approvers' 21:30 bulk-approval choice — `nightly_bulk_approval_offer`

Runbook *"Approval queue over threshold at night"*. At 21:30 IST, for tomorrow's business date:

| Task | What it does |
|---|---|
| `list_low_risk_pending_packs` | Tomorrow's packs still pending approval at risk ≤ 2 (`FA_BULK_APPROVE_MAX_RISK`). None: the run ends here, nobody is asked |
| `offer_bulk_approval_to_approvers` (human-in-the-loop) | Waits in **Required Actions** (the approvers' Slack channel gets the link): *Approve all low-risk (risk 1-2)*, *Approve risk 1 only* or *Leave for one-by-one review*, with a reason. Unanswered after 90 min (`FA_BULK_APPROVAL_OFFER_TIMEOUT_MIN`): nothing is approved |
| `approve_what_the_approvers_chose` | Approves exactly the packs that were offered (not ones submitted since), up to the chosen risk; one `audit_log` row each with the approver's name and reason; the outcome goes to the approvers' channel |
| `announce_newly_approved_packs` | Emits the `approved_packs` asset event (the date, how many, who) when something was approved: `nightly_content_window` runs on it for that date, so the new approvals are rendered and QC'd before 05:50 (unchanged renders are not redone). Skipped when nothing was approved |

Riskier packs are never offered: they are approved one by one. `ops_bulk_approve` remains for an operator's
bulk approval at any other time.
"""
from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, get_current_context

from include.content import bulk_approval_offer as offer
from include.core import config
from include.core.assets import APPROVED_PACKS
from include.core.dagkit import HITL_RETRIES, date_param, default_args, ist_cron, task
from include.core.dates import TOMORROW
from include.core.notifiers import DecisionRequestedNotifier

_OFFER = "ti.xcom_pull(task_ids='list_low_risk_pending_packs')"


@dag(dag_id="nightly_bulk_approval_offer", schedule=ist_cron(config.SCHEDULE_BULK_APPROVAL_OFFER), catchup=False,
     max_active_runs=1, tags=["content", "approvals", "human-in-the-loop"], default_args=default_args("content"),
     doc_md=__doc__, description="21:30 IST: offer tomorrow's pending low-risk packs to the approvers for bulk "
                                 "approval (tomorrow's date)",
     params={"business_date": date_param(TOMORROW)})
def nightly_bulk_approval_offer():
    @task.short_circuit
    def list_low_risk_pending_packs() -> dict | None:
        from include.content.tasks import bulk_approval_offer

        return bulk_approval_offer(get_current_context())

    offer_bulk_approval_to_approvers = HITLOperator(
        task_id="offer_bulk_approval_to_approvers",
        subject=f"{{{{ {_OFFER}['subject'] }}}}",
        body=f"{{{{ {_OFFER}['body'] }}}}",
        options=offer.options(), defaults=offer.DEFAULT,
        params={"reason": Param("", type="string", title="Reason",
                                description="Why these packs may be approved in bulk (recorded in the audit log).")},
        response_timeout=dt.timedelta(minutes=config.BULK_APPROVAL_OFFER_TIMEOUT_MIN),
        notifiers=[DecisionRequestedNotifier(
            title=f"Approvers: {{{{ {_OFFER}['subject'] }}}}",
            if_unanswered=f"after {config.BULK_APPROVAL_OFFER_TIMEOUT_MIN} min nothing is approved in bulk",
            conn_id=config.SLACK_APPROVERS_CONN_ID)],
        execution_timeout=dt.timedelta(minutes=5), **HITL_RETRIES)

    @task
    def approve_what_the_approvers_chose() -> dict:
        from include.content.tasks import apply_bulk_approval_answer

        return apply_bulk_approval_answer(get_current_context())

    @task(outlets=[APPROVED_PACKS])
    def announce_newly_approved_packs() -> dict:
        from include.core.assets import announce_approved_packs

        ctx = get_current_context()
        return announce_approved_packs(ctx, ctx["ti"].xcom_pull(task_ids="approve_what_the_approvers_chose"))

    (list_low_risk_pending_packs() >> offer_bulk_approval_to_approvers >> approve_what_the_approvers_chose()
     >> announce_newly_approved_packs())


nightly_bulk_approval_offer()
