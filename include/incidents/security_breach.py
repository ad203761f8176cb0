"""Suspected breach (runbook 001 "suspected breach"): stop sending, record the incident, list what to rotate.

`ops_security_incident` runs these in order:
1. `engage_kill_switch`: every sender stops within a second, queued rows stay queued (audited, P1 to on-call).
2. `record_security_incident`: a P0 `security` incident (post-mortem due in 48 h) with what was reported and by whom;
   its pages follow the usual ladders.
3. `list_what_to_rotate`: the secrets this platform holds, where each lives (the Airflow connection or setting) and
   how to rotate it, the suspected ones first; written as JSON and Markdown under the data root, linked from the
   incident timeline and posted to Slack. Whether each connection exists here is checked; no secret is read out.

Sending stays paused until an operator resumes it (`ops_resume_sending`, audited) once the rotation is done.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.engine import Engine

from include.core import config
from include.core.airflow_api import AIRFLOW_API_CONN_ID
from include.incidents import records

log = logging.getLogger(__name__)

SUSPECTED = {
    "whatsapp_token": "WhatsApp access token",
    "app_secret": "Meta app secret (webhook signatures)",
    "chat_keys": "Slack webhooks / PagerDuty routing keys",
    "database": "database credentials",
    "airflow_users": "Airflow users or the service user",
    "unknown": "unknown: rotate everything",
}


@dataclass(frozen=True)
class Secret:
    key: str            # one of SUSPECTED (what a report of this kind puts first)
    name: str
    where: str          # the Airflow connection / setting holding it
    conn_id: str | None
    how: str


def inventory() -> list[Secret]:
    """Every secret the platform holds, with where it lives and how to rotate it (README: "Rotating secrets")."""
    return [
        Secret("whatsapp_token", "WhatsApp Cloud API access token (system user)",
               f"connection `{config.WHATSAPP_CONN_ID}` (password)", config.WHATSAPP_CONN_ID,
               "Business Manager → System users → generate a new token with whatsapp_business_messaging; update the "
               "connection; revoke the old token; the 05:50 check reads the new expiry via debug_token"),
        Secret("app_secret", "Meta app secret (X-Hub-Signature-256 of webhooks)",
               f"connection `{config.WHATSAPP_CONN_ID}` extra app_secret (+ previous_app_secret during the overlap)",
               config.WHATSAPP_CONN_ID,
               "App dashboard → Settings → Basic → reset the app secret; set the new one as app_secret. After a leak "
               "do NOT keep the old one as previous_app_secret (no overlap): webhooks it signs are refused at once"),
        Secret("app_secret", "Webhook verify token", f"connection `{config.WHATSAPP_CONN_ID}` extra verify_token",
               config.WHATSAPP_CONN_ID, "choose a new random token, update the connection, then the app's webhook "
                                        "configuration (the handshake re-verifies)"),
        Secret("chat_keys", "Slack incoming webhooks (alerts, approvers)",
               f"connections `{config.SLACK_CONN_ID}`, `{config.SLACK_APPROVERS_CONN_ID}`", config.SLACK_CONN_ID,
               "Slack app → Incoming Webhooks → revoke and add new ones; update both connections"),
        Secret("chat_keys", "PagerDuty Events API routing keys", "on-call roster (`oncall_roles.routing_key`) and "
               "connection `pagerduty_events`", "pagerduty_events",
               "PagerDuty service → Integrations → regenerate each key; update with ops_edit_oncall_roster (audited)"),
        Secret("database", "App database credentials", f"connection `{config.APP_DB_CONN_ID}`", config.APP_DB_CONN_ID,
               "ALTER ROLE … PASSWORD; update the connection; check pg_stat_activity for unknown clients"),
        Secret("database", "Airflow metadata database credentials", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None,
               "rotate the role's password and the setting on every Airflow component; restart them"),
        Secret("airflow_users", "Airflow service user for the REST API", f"connection `{AIRFLOW_API_CONN_ID}`",
               AIRFLOW_API_CONN_ID, "reset the ops_bot user's password; update the connection; review users and roles"),
        Secret("airflow_users", "Airflow JWT / API secret key",
               "AIRFLOW__API_AUTH__JWT_SECRET, AIRFLOW__API__SECRET_KEY", None,
               "set new random values on every component and restart: every session is logged out"),
        Secret("chat_keys", "Advisor e-mail relay credentials", f"connection `{config.ADVISOR_EMAIL_CONN_ID}`",
               config.ADVISOR_EMAIL_CONN_ID, "rotate the SMTP password at the relay; update the connection"),
        Secret("chat_keys", "AI compliance service API key", f"connection `{config.AI_COMPLIANCE_CONN_ID}` (password)",
               config.AI_COMPLIANCE_CONN_ID, "revoke the key at the provider; update the connection"),
    ]


def rotation_checklist(suspected: str, connection_exists: Callable[[str], bool]) -> list[dict]:
    """The checklist, the suspected kind first (all of it first when unknown)."""
    if suspected not in SUSPECTED:
        raise ValueError(f"suspected {suspected!r} is not one of {sorted(SUSPECTED)}")
    items = []
    for s in inventory():
        first = suspected in ("unknown", s.key)
        present = connection_exists(s.conn_id) if s.conn_id else None
        items.append({**asdict(s), "priority": "rotate now" if first else "rotate after the suspected ones",
                      "configured here": {True: "yes", False: "no", None: "setting (not a connection)"}[present]})
    return sorted(items, key=lambda i: i["priority"] != "rotate now")


def require_report(what_happened: object, suspected: object) -> tuple[str, str]:
    text = str(what_happened or "").strip()
    if len(text) < 10:
        raise ValueError("describe what happened (at least 10 characters): it opens the incident and the audit row")
    kind = str(suspected or "").strip()
    if kind not in SUSPECTED:
        raise ValueError(f"suspected {kind!r} is not one of {sorted(SUSPECTED)}")
    return text, kind


def engage_kill_switch(engine: Engine, what_happened: str, actor: str, context=None) -> dict:
    from include.delivery.kill_switch import flip_sending

    state, _ = flip_sending(engine, True, f"security incident: {what_happened}", actor, context)
    return {"paused": state.paused, "changed_by": state.changed_by, "reason": state.reason}


def record_incident(engine: Engine, what_happened: str, suspected: str, actor: str, now: dt.datetime,
                    business_date: dt.date) -> dict:
    """A P0 `security` incident (joins today's if one is open), with the report on its timeline."""
    inc = records.open_or_join(engine, records.dedup_key("security", business_date), "P0", "security",
                               f"Suspected breach reported by {actor}: {what_happened}", business_date, now)
    records.append(engine, inc.incident_id, "operator_action",
                   f"{actor} reported a suspected breach ({SUSPECTED[suspected]}): {what_happened}; sending paused",
                   actor, {"suspected": suspected}, now)
    return {"incident_id": inc.incident_id, "opened": inc.opened,
            "postmortem_due_at": inc.postmortem_due_at.isoformat() if inc.postmortem_due_at else None}


def publish_checklist(engine: Engine, incident: Mapping[str, Any], suspected: str, actor: str,
                      connection_exists: Callable[[str], bool], now: dt.datetime, context=None) -> dict:
    """Write the checklist (JSON + Markdown) under the data root, link it on the timeline, post it to Slack (P0)."""
    from include.core.alerting import Alert, RunRef, Severity, post
    from include.core.storage import data_root

    items = rotation_checklist(suspected, connection_exists)
    folder = data_root() / "security" / f"incident-{incident['incident_id']}"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    body = {"incident_id": incident["incident_id"], "suspected": suspected, "reported_by": actor,
            "generated_at": now.isoformat(), "sending": "paused (resume with ops_resume_sending once rotated)",
            "rotate": items}
    (folder / f"rotation-{stamp}.json").write_text(json.dumps(body, indent=2))
    lines = [f"# Incident {incident['incident_id']}: what to rotate ({SUSPECTED[suspected]})", "",
             "Sending is paused. Resume with `ops_resume_sending` once the rotation is done.", ""]
    lines += [f"- [ ] **{i['name']}** ({i['priority']}; configured here: {i['configured here']}) — {i['where']}: "
              f"{i['how']}" for i in items]
    md = folder / f"rotation-{stamp}.md"
    md.write_text("\n".join(lines) + "\n")
    records.append(engine, incident["incident_id"], "operator_action",
                   f"rotation checklist written: {md}", actor, {"items": len(items), "uri": str(md)}, now)
    now_items = [i["name"] for i in items if i["priority"] == "rotate now"]
    post(Alert(Severity.P0, f"Security incident #{incident['incident_id']}: sending paused, rotate secrets now",
               {"suspected": SUSPECTED[suspected], "reported by": actor, "checklist": str(md),
                "incident_category": "security"},
               RunRef.from_context(context), [f"rotate now: {n}" for n in now_items]))
    return {"checklist": str(md), "rotate_now": now_items, "items": len(items)}
