"""
### Bulk approval: `ops_bulk_approve`

Runbook *"Approval queue over threshold at night"*. Approves the pending packs of a business date
whose risk level is at most `max_risk_level`. Only low-risk levels are allowed here
(1..BULK_APPROVE_MAX_RISK, default 2); riskier packs must be reviewed one by one. Every approved
pack gets an `audit_log` row with your user name and the reason. When something was approved,
`announce_newly_approved_packs` emits the `approved_packs` asset event and `nightly_content_window` runs on it for
that date, rendering and QC-ing the newly approved packs (unchanged renders are not redone).
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from include.core import config
from include.core.assets import APPROVED_PACKS
from include.core.dagkit import default_args, task


@dag(dag_id="ops_bulk_approve", schedule=None, catchup=False, tags=["ops", "content"], max_active_runs=1,
     default_args=default_args(retries=1), doc_md=__doc__,
     description="Operator: approve a date's low-risk pending packs in bulk (the date you give), audited",
     params={
         "business_date": Param(type="string", format="date", title="Business date",
                                description="The date whose pending packs to approve (YYYY-MM-DD)."),
         "max_risk_level": Param(1, type="integer", minimum=1, maximum=config.BULK_APPROVE_MAX_RISK,
                                 title="Maximum risk level",
                                 description="Packs up to this risk level are approved (low risk only)."),
         "reason": Param("", type="string", minLength=5, title="Reason",
                         description="Why these packs are approved in bulk. Recorded in the audit log."),
     })
def ops_bulk_approve():
    @task
    def approve_low_risk_packs() -> dict:
        from include.operations.tasks import bulk_approve

        return bulk_approve(get_current_context())

    @task(outlets=[APPROVED_PACKS])
    def announce_newly_approved_packs() -> dict:
        from include.core.assets import announce_approved_packs

        ctx = get_current_context()
        return announce_approved_packs(ctx, ctx["ti"].xcom_pull(task_ids="approve_low_risk_packs"))

    approve_low_risk_packs() >> announce_newly_approved_packs()


ops_bulk_approve()
