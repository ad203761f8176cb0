"""Acknowledging an incident in the Airflow UI (runbook: "acknowledge the page").

Every open, unacknowledged incident gets one acknowledgement request: `incident_escalation` triggers an
`incident_acknowledgement` run for it (run id `incident-<id>`, so a retried or overlapping request never makes two),
whose human-in-the-loop task waits in the UI's **Required Actions** with the incident's facts. The answer lands on
the timeline like a PagerDuty acknowledgement does (`records.acknowledge`, via "airflow-ui"):

* *Acknowledge*: the time ladder stops (impact pages go on until resolution, as the matrix says);
* *Acknowledge and resolve*: acknowledged, then resolved with the note as the how;
* *Leave it escalating*: the person saw it and declines it; the ladders go on.

A request nobody answers lapses after FA_INCIDENT_ACK_REQUEST_TIMEOUT_MIN (the default, *Leave it escalating*,
recorded as a lapse). Requests are made through the REST API (tasks never touch Airflow's metadata DB).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Engine

from include.core import config
from include.core.alerting import RunRef
from include.core.db import query
from include.incidents import records

log = logging.getLogger(__name__)

DAG_ID = "incident_acknowledgement"
ASK_TASK = "acknowledge_in_airflow_ui"
ACKNOWLEDGE = "Acknowledge"
ACK_AND_RESOLVE = "Acknowledge and resolve"
LEAVE = "Leave it escalating"
OPTIONS = [ACKNOWLEDGE, ACK_AND_RESOLVE, LEAVE]
DEFAULT = [LEAVE]

# trigger(incident_id) -> the run id it made (or found: the same id twice is one run)
TriggerRun = Callable[[int], str]


def run_id_for(incident_id: int) -> str:
    return f"incident-{incident_id}"


def describe(engine: Engine, incident_id: int) -> dict | None:
    """The request's subject and body, or None when there is nothing left to acknowledge."""
    try:
        inc = records.get(engine, int(incident_id))
    except Exception as exc:  # noqa: BLE001 - a missing row is the operator's typo, told as such
        raise ValueError(f"incident {incident_id!r} does not exist: {exc}") from None
    if not inc.is_open or inc.acknowledged_at is not None:
        log.info("incident %s is %s: no acknowledgement needed", incident_id,
                 "resolved" if not inc.is_open else f"already acknowledged by {inc.acknowledged_by}")
        return None
    impact = ", ".join(f"{k}: {v}" for k, v in sorted(inc.impact.items())) or "n/a"
    subject = f"{inc.severity} incident #{inc.incident_id} ({inc.category.replace('_', ' ')}): acknowledge?"
    body = (f"**{inc.trigger}**\n\n"
            f"* opened: {inc.opened_at:%Y-%m-%d %H:%M} UTC\n"
            f"* business date: {inc.business_date or 'n/a'}\n"
            f"* impact: {impact}\n\n"
            "*Acknowledge* stops the time ladder (primary → secondary → engineering manager → CTO); the impact "
            "ladder goes on until the incident is resolved. Write a note for the timeline if you like.")
    return {"incident_id": inc.incident_id, "subject": subject, "body": body}


def record_answer(engine: Engine, incident_id: int, payload: Mapping[str, Any] | None,
                  now: dt.datetime | None = None) -> dict:
    """Put the UI answer on the incident's timeline (and act on it)."""
    now = now or dt.datetime.now(dt.UTC)
    if not payload:
        raise ValueError(f"incident {incident_id}: the acknowledgement task returned no answer")
    chosen = list(payload.get("chosen_options") or [])
    if len(chosen) != 1 or chosen[0] not in OPTIONS:
        raise ValueError(f"incident {incident_id}: answer {chosen!r} is not one of {OPTIONS}")
    choice = chosen[0]
    user = payload.get("responded_by_user") or {}
    by = (user.get("name") or user.get("id")) if isinstance(user, Mapping) else None
    note = str((payload.get("params_input") or {}).get("note") or "").strip()
    if not by:  # the scheduler applied the default: nobody answered in time
        minutes = config.INCIDENT_ACK_REQUEST_TIMEOUT_MIN
        records.append(engine, incident_id, "ack_request",
                       f"the acknowledgement request in the Airflow UI lapsed unanswered after {minutes} min; "
                       "the ladders go on", "scheduler", {"via": "airflow-ui", "lapsed": True}, now)
        return {"incident_id": incident_id, "answer": None, "acknowledged": False}
    if choice == LEAVE:
        records.append(engine, incident_id, "ack_request", f"{by} declined the acknowledgement in the Airflow UI"
                       + (f": {note}" if note else "") + "; the ladders go on", by,
                       {"via": "airflow-ui", "note": note}, now)
        return {"incident_id": incident_id, "answer": choice, "by": by, "acknowledged": False}
    first = records.acknowledge(engine, incident_id, by, "airflow-ui", now)
    if note:
        records.append(engine, incident_id, "operator_action", f"note from {by}: {note}", by,
                       {"via": "airflow-ui"}, now)
    resolved = False
    if choice == ACK_AND_RESOLVE:
        resolved = records.resolve(engine, incident_id, by, note or "resolved in the Airflow UI", now)
    return {"incident_id": incident_id, "answer": choice, "by": by, "acknowledged": True,
            "first_acknowledgement": first, "resolved": resolved}


def request_acknowledgements(engine: Engine, trigger: TriggerRun, now: dt.datetime | None = None) -> dict:
    """One Required Actions request per open, unacknowledged incident. The timeline entry is written only once the
    run exists, so a failed trigger is retried at the next escalation run."""
    now = now or dt.datetime.now(dt.UTC)
    with engine.connect() as conn:
        waiting = conn.execute(query("incidents/awaiting_ack_request")).fetchall()
    requested, failed = [], []
    for row in waiting:
        try:
            run_id = trigger(row.incident_id)
        except Exception as exc:  # noqa: BLE001 - one incident's failed request must not stop the others
            log.warning("could not request acknowledgement of incident %s: %s", row.incident_id, exc)
            failed.append({"incident_id": row.incident_id, "error": str(exc)[:300]})
            continue
        url = RunRef(DAG_ID, ASK_TASK, run_id).required_actions_url
        records.append(engine, row.incident_id, "ack_request",
                       f"acknowledgement requested in the Airflow UI: {url}", "incident_escalation",
                       {"via": "airflow-ui", "dag_id": DAG_ID, "run_id": run_id, "url": url}, now)
        requested.append(row.incident_id)
    return {"requested": requested, "failed": failed}


def trigger_through_rest_api(incident_id: int) -> str:
    """Create the `incident_acknowledgement` run through Airflow's REST API; an existing run (409) is the same
    request made before, so it counts as made."""
    from include.core.airflow_api import api_session

    run_id = run_id_for(incident_id)
    with api_session() as http:
        r = http.post(f"/api/v2/dags/{DAG_ID}/dagRuns",
                      json={"dag_run_id": run_id, "logical_date": None, "conf": {"incident_id": int(incident_id)},
                            "note": f"acknowledgement request for incident #{incident_id}"})
        if r.status_code != 409:
            r.raise_for_status()
    return run_id
