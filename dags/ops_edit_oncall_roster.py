"""
### Edit the on-call roster — `ops_edit_oncall_roster`

The roster (`oncall_roles`) says who holds each on-call role and how to reach them: person, Slack channel,
PagerDuty routing key (32 characters), email, active. `incident_escalation` reads it at every page, so a change
takes effect at its next run (within 5 minutes), **without a deploy**.

Pick the **role** and fill in only what changes: an empty field keeps its current value, `-` clears it
(a role without a routing key is not paged; the incident's timeline and Slack say so). **active**: keep,
active or inactive. A **reason** is required; the change is written to `audit_log` with the triggering user
(routing keys masked to their last 4 characters). A bad parameter fails the run at once, changes nothing and
does not page on-call.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from include.core.dagkit import default_args, task
from include.incidents.escalation import ROLES


@dag(dag_id="ops_edit_oncall_roster", schedule=None, catchup=False, tags=["ops", "incidents"],
     default_args=default_args("operator", retries=1), doc_md=__doc__, max_active_runs=1,
     description="Operator: change who holds an on-call role and how to page them (no date), audited",
     params={"role": Param("primary", type="string", enum=list(ROLES), title="Role"),
             "person": Param("", type=["null", "string"], title="Person", description="Empty keeps; - clears."),
             "slack_channel": Param("", type=["null", "string"], title="Slack channel",
                                    description="#channel or @user. Empty keeps; - clears."),
             "routing_key": Param("", type=["null", "string"], title="PagerDuty routing key",
                                  description="32 letters and digits. Empty keeps; - clears (the role is not paged)."),
             "email": Param("", type=["null", "string"], title="Email", description="Empty keeps; - clears."),
             "active": Param("keep", type="string", enum=["keep", "active", "inactive"], title="Active"),
             "reason": Param("", type="string", minLength=3, title="Reason", description="Recorded in the audit log.")})
def ops_edit_oncall_roster():
    @task
    def edit_oncall_role() -> dict:
        from include.incidents.tasks import edit_oncall_roster

        return edit_oncall_roster(get_current_context())

    edit_oncall_role()


ops_edit_oncall_roster()
