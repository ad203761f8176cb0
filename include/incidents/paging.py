"""Send the due escalation pages and the overdue post-mortem reminders, each at most once.

`escalate(engine, now, send=None)` walks the open incidents, asks `escalation.due_escalations` which pages are due,
looks each role up in the roster (`oncall_roles`) and pages it through PagerDuty (`send`, by default
`include.paging.pagerduty.send_event`, imported only when a page is really sent).

At most once: for each page the `incident_pages` row is inserted first, in a transaction that also holds the
timeline entry; the page is sent only if the insert did not conflict, and the transaction commits only after
PagerDuty accepted it. A retried task finds the row and sends nothing; a concurrent one waits on the uncommitted
row and then finds it; a send that fails rolls the row back, so the next run (5 minutes later) pages again.

A role that is missing from the roster, inactive or has no routing key is not paged: that is recorded once
(`outcome = 'not_paged'`), appended to the timeline as "not paged: no routing key for <role>" and posted to the
on-call Slack channel, never a crash.

After the pages, `close_pagerduty_alerts` sends PagerDuty `acknowledge` (incident acknowledged, for the roles paged
before the acknowledgement) and `resolve` (incident resolved) once per (incident, role), the same way.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection, Engine

from include.core.db import query
from include.incidents import escalation as esc
from include.incidents import records

log = logging.getLogger(__name__)

SendEvent = Callable[..., Any]
PD_SEVERITY = {"P0": "critical", "P1": "error", "P2": "warning"}
SOURCE = "advisor-content-delivery"


@dataclass
class EscalationResult:
    sent: list[dict] = field(default_factory=list)        # {incident_id, role, step}
    not_paged: list[dict] = field(default_factory=list)   # {incident_id, role, step, why}
    failed: list[dict] = field(default_factory=list)      # {incident_id, role, step, error}
    closed: list[dict] = field(default_factory=list)      # {incident_id, role, action}: PD acknowledge / resolve
    already: int = 0                                       # claimed by an earlier or concurrent run

    def as_dict(self) -> dict:
        return {"sent": self.sent, "not_paged": self.not_paged, "failed": self.failed, "closed": self.closed,
                "already": self.already}


def page_dedup_key(incident_id: int, role: str) -> str:
    """The PagerDuty dedup key of an incident's page to one role: every step to that role updates one PD alert."""
    return f"incident-{incident_id}-{role}"


def _default_send() -> SendEvent:
    from include.paging.pagerduty import send_event

    return send_event


def _post_slack(alert) -> bool:
    from include.core.alerting import post

    return post(alert)


def _roster(conn: Connection, role: str):
    return conn.execute(query("incidents/roster_role"), {"role": role}).fetchone()


def _why_not_paged(member) -> str | None:
    if member is None:
        return "role not in the on-call roster"
    if not member.active:
        return "role inactive in the on-call roster"
    if not member.pagerduty_routing_key:
        return "no routing key"
    return None


def escalate(engine: Engine, now: dt.datetime, send: SendEvent | None = None,
             post_slack: Callable[[Any], bool] | None = None) -> EscalationResult:
    """Send every due, unsent page of every open incident (see the module doc). Raises at the end if any page could
    not be sent (after trying the others), so the task fails visibly and its retry pages them."""
    result = EscalationResult()
    post_slack = post_slack or _post_slack
    for incident in records.open_incidents(engine):
        with engine.connect() as conn:
            paged = {(r.role, r.step) for r in conn.execute(query("incidents/pages_for"),
                                                            {"incident_id": incident.incident_id})}
        for page in esc.due_escalations(incident.view(), now, paged):
            _page_once(engine, incident, page, now, send, post_slack, result)
    close_pagerduty_alerts(engine, now, send, result)
    if result.failed:
        raise RuntimeError(f"{len(result.failed)} page(s) not sent (will be retried): {result.failed}")
    return result


def _page_once(engine: Engine, incident: records.Incident, page: esc.Page, now: dt.datetime,
               send: SendEvent | None, post_slack: Callable[[Any], bool], result: EscalationResult) -> None:
    key = page_dedup_key(incident.incident_id, page.role)
    ids = {"incident_id": incident.incident_id, "role": page.role, "step": page.step}
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            member = _roster(conn, page.role)
            why = _why_not_paged(member)
            claimed = conn.execute(query("incidents/claim_page"), {
                **ids, "sent_at": now, "dedup_key": key, "outcome": "sent" if why is None else "not_paged",
                "routing_key": None if why is not None else member.pagerduty_routing_key,
                "reason": page.reason}).fetchone()
            if claimed is None:  # paged (or recorded) by an earlier or concurrent run
                tx.rollback()
                result.already += 1
                return
            kind = "page" if page.ladder == "time" and page.step == "time:primary" else "escalation"
            if why is not None:
                records.append_in(conn, incident.incident_id, kind, f"not paged: {why} for {page.role}",
                                "escalation", {"step": page.step, "reason": page.reason, "why": why}, now)
                tx.commit()
                result.not_paged.append({**ids, "why": why})
                _tell_slack_not_paged(incident, page, why, member, post_slack)
                return
            summary = (f"[{incident.severity}] #{incident.incident_id} {incident.trigger} — {page.reason}")[:1024]
            (send or _default_send())(
                "trigger", member.pagerduty_routing_key, key, summary=summary,
                severity=PD_SEVERITY.get(incident.severity, "critical"), source=SOURCE,
                custom_details={"incident_id": incident.incident_id, "category": incident.category,
                                "business_date": str(incident.business_date), "step": page.step,
                                "role": page.role, "person": member.person, "impact": dict(incident.impact)})
            records.append_in(conn, incident.incident_id, kind,
                            f"paged {page.role} ({member.person or 'unnamed'}): {page.reason}", "escalation",
                            {"step": page.step, "dedup_key": key, "person": member.person,
                             "slack_channel": member.slack_channel}, now)
            tx.commit()
            result.sent.append(ids)
        except Exception as exc:  # one failed page must not stop the others
            if tx.is_active:
                tx.rollback()
            log.exception("page %s for incident %s not sent", page.step, incident.incident_id)
            result.failed.append({**ids, "error": f"{type(exc).__name__}: {exc}"[:300]})


def close_pagerduty_alerts(engine: Engine, now: dt.datetime, send: SendEvent | None = None,
                           result: EscalationResult | None = None) -> EscalationResult:
    """Tell PagerDuty what happened to the incidents it was paged about: `acknowledge` every role's alert once the
    incident is acknowledged (in the Airflow UI, by an operator; an acknowledgement made in PagerDuty comes back
    as an acknowledge of its own alert, which is harmless), `resolve` it once the incident is resolved. Each at
    most once per (incident, role, action), by the same insert-then-send transaction as the pages."""
    result = result if result is not None else EscalationResult()
    with engine.connect() as conn:
        due = conn.execute(query("incidents/closures_due")).fetchall()
    for row in due:
        ids = {"incident_id": row.incident_id, "role": row.role, "action": row.action}
        with engine.connect() as conn:
            tx = conn.begin()
            try:
                if conn.execute(query("incidents/claim_closure"), {**ids, "sent_at": now}).fetchone() is None:
                    tx.rollback()
                    continue
                (send or _default_send())(row.action, row.routing_key, row.dedup_key,
                                          severity=PD_SEVERITY.get(row.severity, "critical"), source=SOURCE)
                records.append_in(conn, row.incident_id, "page",
                                  f"PagerDuty alert to {row.role}: {row.action} sent ({row.actor or 'unknown'})",
                                  "escalation", {"dedup_key": row.dedup_key, "action": row.action}, now)
                tx.commit()
                result.closed.append(ids)
            except Exception as exc:  # the next run retries it
                if tx.is_active:
                    tx.rollback()
                log.exception("PagerDuty %s for incident %s / %s not sent", row.action, row.incident_id, row.role)
                result.failed.append({**ids, "error": f"{type(exc).__name__}: {exc}"[:300]})
    return result


def _tell_slack_not_paged(incident, page, why, member, post_slack) -> None:
    from include.core.alerting import Alert, Severity

    post_slack(Alert(Severity.P1, f"Incident #{incident.incident_id}: {page.role} not paged ({why})", {
        "incident_id": incident.incident_id, "step": page.step, "reason": page.reason,
        "role": page.role, "person": getattr(member, "person", None) or "nobody",
        "fix": "set the role's routing key with the ops_edit_oncall_roster DAG"}))


def remind_overdue_postmortems(engine: Engine, now: dt.datetime,
                               post_slack: Callable[[Any], bool] | None = None) -> list[int]:
    """One Slack reminder per incident whose post-mortem is overdue, with a `reminder` timeline entry. The claim
    (postmortem_reminded_at) and the entry commit only if Slack accepted the post, so a failed post is retried
    by the next run and a concurrent run never posts twice. Returns the incidents reminded about."""
    from include.core.alerting import Alert, Severity

    post_slack = post_slack or _post_slack
    reminded: list[int] = []
    for row in records.overdue_postmortems(engine, now):
        with engine.connect() as conn:
            tx = conn.begin()
            try:
                if conn.execute(query("incidents/mark_reminded"), {"incident_id": row["incident_id"],
                                                                   "now": now}).fetchone() is None:
                    tx.rollback()
                    continue
                late = now - row["postmortem_due_at"]
                text = (f"post-mortem overdue since {row['postmortem_due_at']:%Y-%m-%d %H:%M} UTC "
                        f"({int(late.total_seconds() // 3600)} h late)")
                records.append_in(conn, row["incident_id"], "reminder", text, "escalation",
                                {"due_at": row["postmortem_due_at"]}, now)
                ok = post_slack(Alert(Severity.P2, f"Post-mortem overdue: incident #{row['incident_id']}", {
                    "incident_id": row["incident_id"], "trigger": row["trigger"], "severity": row["severity"],
                    "category": row["category"], "business date": row["business_date"],
                    "due": row["postmortem_due_at"]}))
                if not ok:
                    tx.rollback()
                    continue
                tx.commit()
                reminded.append(row["incident_id"])
            except BaseException:
                if tx.is_active:
                    tx.rollback()
                raise
    return reminded
