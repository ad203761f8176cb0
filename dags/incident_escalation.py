"""
### Incident escalation — `incident_escalation`

Every 5 minutes (IST cron), for every **open incident** (`incidents`, opened or joined by P0/P1 alerts):

* `page_due_escalations` pages the roles whose ladder step is due, through PagerDuty (dedup key
  `incident-<id>-<role>`), and records each page in `incident_pages` and on the incident's timeline. The
  `(incident, role, step)` row is inserted in the transaction that sends, so a retried or overlapping run never
  pages twice. A role without a routing key is not paged: the timeline says so and Slack is told. Once an incident
  is acknowledged or resolved, the PagerDuty alerts of the roles it paged are acknowledged / resolved (once each).
* `request_acknowledgement_in_ui` asks once per open, unacknowledged incident for an acknowledgement in the Airflow
  UI: it triggers an `incident_acknowledgement` run (run id `incident-<id>`) whose human-in-the-loop task waits in
  **Required Actions**; the request and its link go on the timeline. An acknowledgement there or in PagerDuty
  stops the time ladder.
* `remind_overdue_postmortems` posts one Slack reminder per P0 whose post-mortem is overdue (due 24 h after
  opening, 48 h for security, compliance and account-suspension incidents).

**Time ladder** (stops when someone acknowledges): primary at once → secondary after 5 min → engineering manager
when open more than 30 min → CTO after 1 h (P0; a P1 stops at the secondary).

**Impact ladder** (does not stop on acknowledgement, only on resolution; "within X" = paged at X):
delivery rate < 95%: engineering manager at once, head of product 1 h, CTO 4 h · < 90%: CTO at once, CEO 30 min,
board 1 h · compliance (SEBI violation): legal + compliance officer at once, CEO 15 min · quality MEDIUM: head of
operations at once, CTO + head of marketing 2 h · account suspension: CTO + CEO at once.

The ladders are in `include/incidents/escalation.py`; the roster is data (`oncall_roles`), edited with
`ops_edit_oncall_roster`.
"""
from __future__ import annotations

from airflow.sdk import dag, get_current_context

from include.core.dagkit import default_args, ist_cron, task


@dag(dag_id="incident_escalation", schedule=ist_cron("*/5 * * * *"), catchup=False, max_active_runs=1,
     tags=["incidents", "paging"], default_args=default_args("incident", retries=2), doc_md=__doc__,
     description="Every 5 min: page due escalations (any date), ask for UI acknowledgement, remind overdue post-mortems")
def incident_escalation():
    @task
    def page_due_escalations() -> dict:
        from include.incidents.tasks import page_due_escalations as page

        return page(get_current_context())

    @task
    def remind_overdue_postmortems() -> dict:
        from include.incidents.tasks import remind_overdue_postmortems as remind

        return remind(get_current_context())

    @task
    def request_acknowledgement_in_ui() -> dict:
        from include.incidents.tasks import request_acknowledgements

        return request_acknowledgements(get_current_context())

    page_due_escalations()
    request_acknowledgement_in_ui()
    remind_overdue_postmortems()


incident_escalation()
