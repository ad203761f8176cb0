"""Airflow task entry points of incident_escalation and ops_edit_oncall_roster. They read the task context and call
plain functions (paging.py, roster.py) with an engine and `now`."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from include.core.dagkit import acting_user, fail_fast_on_bad_input
from include.core.db import get_engine


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def page_due_escalations(context: Mapping[str, Any]) -> dict:
    """incident_escalation.page_due_escalations: send every due, unsent page of the open incidents."""
    from include.incidents.paging import escalate

    return escalate(get_engine(), _now()).as_dict()


def remind_overdue_postmortems(context: Mapping[str, Any]) -> dict:
    """incident_escalation.remind_overdue_postmortems: one Slack reminder per overdue post-mortem."""
    from include.incidents.paging import remind_overdue_postmortems as remind

    return {"reminded": remind(get_engine(), _now())}


_ACTIVE = {"keep": None, "active": True, "inactive": False}


def edit_oncall_roster(context: Mapping[str, Any]) -> dict:
    """ops_edit_oncall_roster: change one role of the roster (audited); bad input fails at once, pages nobody."""
    from include.incidents.roster import edit_role

    p = dict(context.get("params") or {})
    changes = {"person": p.get("person"), "slack_channel": p.get("slack_channel"), "routing_key": p.get("routing_key"),
               "email": p.get("email"), "active": _ACTIVE.get(str(p.get("active") or "keep"))}
    with fail_fast_on_bad_input():
        return edit_role(get_engine(), p.get("role") or "", changes, p.get("reason") or "", acting_user(context))


def request_acknowledgements(context: Mapping[str, Any]) -> dict:
    """incident_escalation.request_acknowledgement_in_ui: one `incident_acknowledgement` run per open,
    unacknowledged incident (Required Actions in the UI). Without the `airflow_api` connection there is no UI
    to ask in: one INFO line, and PagerDuty stays the way to acknowledge."""
    from include.core.airflow_api import AIRFLOW_API_CONN_ID, connection_exists
    from include.incidents import acknowledgement as ack

    if not connection_exists(AIRFLOW_API_CONN_ID):
        import logging

        logging.getLogger(__name__).info("no %r connection: not requesting acknowledgements in the UI",
                                         AIRFLOW_API_CONN_ID)
        return {"requested": [], "failed": [], "skipped": f"no {AIRFLOW_API_CONN_ID!r} connection"}
    return ack.request_acknowledgements(get_engine(), ack.trigger_through_rest_api, _now())


def incident_to_acknowledge(context: Mapping[str, Any]) -> dict | None:
    """incident_acknowledgement.describe_incident: what the request shows; None (skip the rest) when the incident
    was acknowledged or resolved before anyone looked."""
    from include.incidents.acknowledgement import describe

    conf = getattr(context.get("dag_run"), "conf", None) or {}
    with fail_fast_on_bad_input():
        if "incident_id" not in conf:
            raise ValueError("trigger with conf {\"incident_id\": N}")
        return describe(get_engine(), int(conf["incident_id"]))


def record_acknowledgement(context: Mapping[str, Any]) -> dict:
    """incident_acknowledgement.record_acknowledgement: the UI answer onto the incident's timeline."""
    from include.incidents.acknowledgement import ASK_TASK, record_answer

    ti = context["ti"]
    incident = ti.xcom_pull(task_ids="describe_incident")
    return record_answer(get_engine(), int(incident["incident_id"]), ti.xcom_pull(task_ids=ASK_TASK), _now())


# -- ops_security_incident ------------------------------------------------------------------------------------------
def _security_report(context: Mapping[str, Any]) -> tuple[str, str]:
    from include.incidents.security_breach import require_report

    p = dict(context.get("params") or {})
    with fail_fast_on_bad_input():
        return require_report(p.get("what_happened"), p.get("suspected"))


def engage_kill_switch_for_breach(context: Mapping[str, Any]) -> dict:
    """ops_security_incident.engage_kill_switch: stop all sending first (bad input changes nothing)."""
    from include.incidents.security_breach import engage_kill_switch

    what, _ = _security_report(context)
    return engage_kill_switch(get_engine(), what, acting_user(context), context)


def record_security_incident(context: Mapping[str, Any]) -> dict:
    """ops_security_incident.record_security_incident: the P0 security incident and the report on its timeline."""
    from include.core.dates import ist_today
    from include.incidents.security_breach import record_incident

    what, suspected = _security_report(context)
    now = _now()
    return record_incident(get_engine(), what, suspected, acting_user(context), now, ist_today(now))


def list_what_to_rotate(context: Mapping[str, Any]) -> dict:
    """ops_security_incident.list_what_to_rotate: the checklist under the data root, on the timeline and Slack."""
    from include.core.airflow_api import connection_exists
    from include.incidents.security_breach import publish_checklist

    _, suspected = _security_report(context)
    incident = context["ti"].xcom_pull(task_ids="record_security_incident")
    return publish_checklist(get_engine(), incident, suspected, acting_user(context), connection_exists, _now(),
                             context)
