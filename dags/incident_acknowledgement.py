"""
### Incident acknowledgement in the Airflow UI — `incident_acknowledgement`

Runbook *"acknowledge the page"*. `incident_escalation` triggers one run per open, unacknowledged incident (run id
`incident-<id>`, conf `{"incident_id": N}`); an operator may trigger one the same way.

| Task | What it does |
|---|---|
| `describe_incident` | Reads the incident; if it was acknowledged (e.g. in PagerDuty) or resolved meanwhile, the rest is skipped |
| `acknowledge_in_airflow_ui` (human-in-the-loop) | Waits in **Required Actions** (browse → Required Actions, or the link on Slack and on the timeline): *Acknowledge*, *Acknowledge and resolve* or *Leave it escalating*, with an optional note. Unanswered after 4 h (`FA_INCIDENT_ACK_REQUEST_TIMEOUT_MIN`) it lapses |
| `record_acknowledgement` | Puts the answer on the incident's timeline with the person's name: an acknowledgement stops the time ladder (PagerDuty is told at the next escalation run), a resolution closes the incident, a decline or a lapse is recorded and the ladders go on |
"""
from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, get_current_context

from include.core import config
from include.core.dagkit import HITL_RETRIES, default_args, task
from include.core.notifiers import DecisionRequestedNotifier
from include.incidents import acknowledgement as ack

_INCIDENT = "ti.xcom_pull(task_ids='describe_incident')"


@dag(dag_id="incident_acknowledgement", schedule=None, catchup=False, tags=["incidents", "human-in-the-loop"],
     default_args=default_args("incident", retries=1), doc_md=__doc__,
     description="Acknowledge an open incident in the Airflow UI (Required Actions); the answer lands on its timeline")
def incident_acknowledgement():
    @task.short_circuit
    def describe_incident() -> dict | None:
        from include.incidents.tasks import incident_to_acknowledge

        return incident_to_acknowledge(get_current_context())

    acknowledge_in_airflow_ui = HITLOperator(
        task_id=ack.ASK_TASK,
        subject=f"{{{{ {_INCIDENT}['subject'] }}}}",
        body=f"{{{{ {_INCIDENT}['body'] }}}}",
        options=ack.OPTIONS, defaults=ack.DEFAULT,
        params={"note": Param("", type="string", title="Note for the timeline",
                              description="What you are doing about it (optional).")},
        response_timeout=dt.timedelta(minutes=config.INCIDENT_ACK_REQUEST_TIMEOUT_MIN),
        notifiers=[DecisionRequestedNotifier(
            title=f"{{{{ {_INCIDENT}['subject'] }}}}",
            if_unanswered=f"the request lapses after {config.INCIDENT_ACK_REQUEST_TIMEOUT_MIN} min; "
                          "PagerDuty escalation goes on either way")],
        execution_timeout=dt.timedelta(minutes=5), **HITL_RETRIES)

    @task
    def record_acknowledgement() -> dict:
        from include.incidents.tasks import record_acknowledgement as record

        return record(get_current_context())

    describe_incident() >> acknowledge_in_airflow_ui >> record_acknowledgement()


incident_acknowledgement()
