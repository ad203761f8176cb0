"""
### Suspected breach: `ops_security_incident`

Runbook 001 *"suspected breach"* (a leaked token, an unknown login, a webhook signed with an unknown secret).
Trigger it with **what happened** and **what is suspected**; it acts in this order:

| Task | What it does |
|---|---|
| `engage_kill_switch` | Pauses all WhatsApp sending (senders stop within a second, queued rows stay queued), audited with your name |
| `record_security_incident` | Opens (or joins today's) P0 `security` incident with your report on its timeline; the post-mortem is due in 48 h and the usual ladders page |
| `list_what_to_rotate` | Writes the rotation checklist (every secret the platform holds, where it lives, how to rotate it, the suspected ones first, whether each connection is configured here) as JSON and Markdown under the data root (`security/incident-<id>/`), links it on the timeline and posts it to Slack |

Sending stays paused until `ops_resume_sending` (audited) once the rotation is done. The README's "Rotating secrets"
section has the token and app-secret procedures.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context

from include.core.dagkit import default_args, task
from include.incidents.security_breach import SUSPECTED


@dag(dag_id="ops_security_incident", schedule=None, catchup=False, max_active_runs=1, tags=["ops", "incidents",
     "security", "kill-switch"], default_args=default_args("incident", retries=1), doc_md=__doc__,
     description="Operator: suspected breach: pause sending, open a P0 security incident, list what to rotate",
     params={
         "what_happened": Param("", type="string", minLength=10, title="What happened",
                                description="What was seen, where and when. Opens the incident and the audit row."),
         "suspected": Param("unknown", type="string", enum=sorted(SUSPECTED), title="What is suspected",
                            values_display=SUSPECTED,
                            description="Which secrets may be exposed (they are listed first to rotate)."),
     })
def ops_security_incident():
    @task
    def engage_kill_switch() -> dict:
        from include.incidents.tasks import engage_kill_switch_for_breach

        return engage_kill_switch_for_breach(get_current_context())

    @task
    def record_security_incident() -> dict:
        from include.incidents.tasks import record_security_incident as record

        return record(get_current_context())

    @task
    def list_what_to_rotate() -> dict:
        from include.incidents.tasks import list_what_to_rotate as listing

        return listing(get_current_context())

    engage_kill_switch() >> record_security_incident() >> list_what_to_rotate()


ops_security_incident()
