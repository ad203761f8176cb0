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
