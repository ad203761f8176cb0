"""Incident records: open or join by dedup key, the timeline, acknowledgement, resolution, post-mortem deadlines.

Plain functions over an engine and an explicit `now` (timezone-aware), no Airflow: tasks, plugins and tests call
them alike. Each function is one transaction; the timeline entry commits with the change it describes.

Rules:

* **Dedup key** of an alert: `"<category>:<business date>"` (`dedup_key`). One open incident per kind of trouble
  per business day: the 05:50 check, the fan-out's in-window monitor and the 06:05 checkpoint all reporting a
  delivery-rate problem for 2026-12-01 land on the same incident; the same trouble the next day is a new one, and
  so is a recurrence after the incident was resolved (the unique index covers open incidents only).
* **Severity only gets worse** on a join (a P1 joined by a P0 becomes a P0; a later P1 leaves it P0); a severity
  change is an `escalation` entry on the timeline.
* **Post-mortem**: a P0 (opened as P0, or escalated to P0) is due `opened_at + 24 h` (runbook 000), or + 48 h for
  runbook 001's critical categories (`escalation.CRITICAL_CATEGORIES`: security, compliance, account suspension).
* **Impact figures** (`delivery_rate`, `quality_rating`, ...) are the latest reported; `impact["since"]` keeps the
  first time each impact level was seen, which starts that level's ladder (include/incidents/escalation.py).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection, Engine

from include.core.db import query
from include.incidents import escalation as esc

log = logging.getLogger(__name__)

TIMELINE_KINDS = ("alert", "page", "escalation", "ack", "operator_action", "resolved", "reminder",
                  "ack_request")  # a UI acknowledgement request, its decline or lapse (migration 0017)


@dataclass(frozen=True)
class Incident:
    incident_id: int
    dedup_key: str
    severity: str
    category: str
    trigger: str
    business_date: dt.date | None
    opened_at: dt.datetime
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_via: str | None = None
    resolved_at: dt.datetime | None = None
    resolved_by: str | None = None
    resolved_how: str | None = None
    postmortem_due_at: dt.datetime | None = None
    postmortem_reminded_at: dt.datetime | None = None
    impact: Mapping[str, Any] = field(default_factory=dict)
    opened: bool = False  # this call opened it (False: joined an open one, or read back)

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def view(self) -> esc.IncidentView:
        return esc.IncidentView(self.incident_id, self.severity, self.category, self.opened_at, self.acknowledged_at,
                                self.resolved_at, dict(self.impact), self.dedup_key, self.trigger)

    @classmethod
    def from_row(cls, row, opened: bool = False) -> Incident:
        m = dict(row._mapping)
        m["impact"] = dict(m.get("impact") or {})
        return cls(**m, opened=opened)


def dedup_key(category: str, business_date: dt.date | None) -> str:
    """One open incident per category and business date (see the module doc)."""
    return f"{category}:{business_date.isoformat() if business_date else 'no-date'}"


def _check(severity: str, category: str, now: dt.datetime) -> None:
    if severity not in esc.SEVERITIES:
        raise ValueError(f"severity must be one of {esc.SEVERITIES}, got {severity!r}")
    if category not in esc.CATEGORIES:
        raise ValueError(f"category must be one of {esc.CATEGORIES}, got {category!r}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


def _json(value: Any) -> str:
    return json.dumps(value or {}, default=str)


def append_in(conn: Connection, incident_id: int, kind: str, text: str, actor: str, details: Mapping | None,
              now: dt.datetime) -> int:
    """Append a timeline entry inside the caller's transaction (it commits with the change it describes)."""
    if kind not in TIMELINE_KINDS:
        raise ValueError(f"timeline kind must be one of {TIMELINE_KINDS}, got {kind!r}")
    return conn.execute(query("incidents/append"), {
        "incident_id": incident_id, "at": now, "kind": kind, "actor": actor or "unknown", "text": text,
        "details": _json(details)}).scalar_one()


def _get(conn: Connection, incident_id: int, opened: bool = False) -> Incident:
    row = conn.execute(query("incidents/get"), {"incident_id": incident_id}).fetchone()
    if row is None:
        raise LookupError(f"no incident {incident_id}")
    return Incident.from_row(row, opened)


def _merge_impact(category: str, old: Mapping[str, Any], new: Mapping[str, Any] | None,
                  now: dt.datetime) -> dict[str, Any]:
    merged = {k: v for k, v in old.items() if k != "since"}
    merged.update({k: v for k, v in (new or {}).items() if k != "since" and v is not None})
    since = dict(old.get("since") or {})
    for level in esc.impact_levels(category, merged):
        since.setdefault(level, now.isoformat())
    if since:
        merged["since"] = since
    return merged


def open_or_join(engine: Engine, dedup_key: str, severity: str, category: str, trigger: str,
                 business_date: dt.date | None, now: dt.datetime, impact: Mapping[str, Any] | None = None, *,
                 actor: str = "alerting", details: Mapping[str, Any] | None = None) -> Incident:
    """Open an incident for `dedup_key`, or join the open one: the severity escalates if `severity` is worse, the
    impact figures are updated, and the trigger is appended to the timeline as an `alert` entry (plus an
    `escalation` entry when the severity changed). Concurrent callers with the same key end on one incident."""
    _check(severity, category, now)
    with engine.begin() as conn:
        row = conn.execute(query("incidents/open_or_join"), {
            "dedup_key": dedup_key, "severity": severity, "category": category, "trigger": trigger,
            "business_date": business_date, "now": now}).one()
        current = _get(conn, row.incident_id, bool(row.opened))
        new_severity = esc.worse(current.severity, severity)
        merged = _merge_impact(current.category, current.impact, impact, now)
        due = esc.postmortem_due(new_severity, current.category, current.opened_at)
        conn.execute(query("incidents/update_state"), {"incident_id": current.incident_id, "severity": new_severity,
                                                       "impact": _json(merged), "postmortem_due_at": due})
        verb = "opened" if row.opened else "joined"
        append_in(conn, current.incident_id, "alert", f"[{severity}] {trigger}", actor,
                {"verb": verb, "severity": severity, "impact": dict(impact or {}), **dict(details or {})}, now)
        if not row.opened and new_severity != current.severity:
            append_in(conn, current.incident_id, "escalation",
                    f"severity {current.severity} → {new_severity} ({trigger})", actor,
                    {"from": current.severity, "to": new_severity}, now)
        return _get(conn, current.incident_id, bool(row.opened))


def append(engine: Engine, incident_id: int, kind: str, text: str, actor: str,
           details: Mapping[str, Any] | None = None, now: dt.datetime | None = None) -> int:
    """Append one entry to an incident's timeline; returns its id."""
    with engine.begin() as conn:
        return append_in(conn, incident_id, kind, text, actor, details, now or dt.datetime.now(dt.UTC))


def acknowledge(engine: Engine, incident_id: int, actor: str, via: str, now: dt.datetime) -> bool:
    """A person acknowledged the incident (Airflow UI HITL, PagerDuty, an operator): the time ladder stops.
    Returns True for the first acknowledgement; later ones (or of a resolved incident) are timeline entries only."""
    if not (actor or "").strip():
        raise ValueError("an acknowledgement needs the person who gave it")
    with engine.begin() as conn:
        conn.execute(query("incidents/lock"), {"incident_id": incident_id}).one()
        first = conn.execute(query("incidents/acknowledge"), {"incident_id": incident_id, "now": now,
                                                              "actor": actor, "via": via}).fetchone() is not None
        append_in(conn, incident_id, "ack", f"acknowledged by {actor} via {via}" + ("" if first else " (again)"),
                actor, {"via": via, "first": first}, now)
        return first


def resolve(engine: Engine, incident_id: int, actor: str, how: str, now: dt.datetime) -> bool:
    """Resolve the incident (an operator, or `resolve_when_clear`): nobody is paged for it any more.
    Returns False if it was already resolved."""
    if not (how or "").strip():
        raise ValueError("say how the incident was resolved")
    with engine.begin() as conn:
        conn.execute(query("incidents/lock"), {"incident_id": incident_id}).one()
        done = conn.execute(query("incidents/resolve"), {"incident_id": incident_id, "now": now, "actor": actor,
                                                         "how": how}).fetchone() is not None
        if done:
            append_in(conn, incident_id, "resolved", f"resolved by {actor}: {how}", actor, {"how": how}, now)
        return done


def resolve_when_clear(engine: Engine, category: str, business_date: dt.date | None, condition_cleared: bool,
                       now: dt.datetime, how: str | None = None) -> list[int]:
    """Automatic resolution: when the check that raised a category's incident finds the condition cleared
    (delivery recovered, SLA met), resolve the open incidents of that category and date. Returns their ids."""
    if not condition_cleared:
        return []
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(query("incidents/open_for_category"),
                                          {"category": category, "business_date": business_date})]
    text = how or f"automatic: {category.replace('_', ' ')} condition cleared"
    return [i for i in ids if resolve(engine, i, "automatic", text, now)]


def get(engine: Engine, incident_id: int) -> Incident:
    with engine.connect() as conn:
        return _get(conn, incident_id)


def open_incidents(engine: Engine) -> list[Incident]:
    with engine.connect() as conn:
        return [Incident.from_row(r) for r in conn.execute(query("incidents/open"))]


def timeline(engine: Engine, incident_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query("incidents/timeline"), {"incident_id": incident_id})]


def overdue_postmortems(engine: Engine, now: dt.datetime) -> list[dict[str, Any]]:
    """P0 incidents whose post-mortem is past due and that were not reminded about yet."""
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query("incidents/overdue_postmortems"), {"now": now})]


# -- alerts → incidents ------------------------------------------------------------------------------------------
# Ordered: the first rule that matches an alert's title decides its category (compliance before quality, so a
# "SEBI disclaimer quality" finding is a compliance incident).
_CATEGORY_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("compliance", re.compile(r"\bsebi\b|compliance|disclaimer|banned claim|violation", re.I)),
    ("account_suspension", re.compile(r"suspen|account (?:disabled|restricted|banned)|waba .*(?:disabled|banned)",
                                      re.I)),
    ("security", re.compile(r"security|leak|unauthori[sz]ed|signature", re.I)),
    ("delivery_rate", re.compile(r"delivery rate|failure rate|success rate", re.I)),
    ("sla", re.compile(r"\bsla\b|started \d+ min late|deadline", re.I)),
    ("quality", re.compile(r"quality|\b(?:yellow|red|flagged)\b", re.I)),
)
_RATE_IN_TITLE = re.compile(r"delivery rate (\d+(?:\.\d+)?)\s*%", re.I)
_QUALITY_IN_TITLE = re.compile(r"\b(YELLOW|RED|MEDIUM|LOW)\b")


def alert_category(alert: Any) -> str:
    """The incident category of an alert: its `incident_category` fact when it names one, else the first rule of
    `_CATEGORY_RULES` matching its title, else `operational`."""
    given = str((alert.facts or {}).get("incident_category") or "")
    if given in esc.CATEGORIES:
        return given
    for category, pattern in _CATEGORY_RULES:
        if pattern.search(alert.title):
            return category
    return "operational"


def alert_impact(alert: Any, category: str) -> dict[str, Any]:
    """Impact figures an alert carries: `delivery_rate` (a fact, or "delivery rate 88.5%" in the title) and
    `quality_rating` (a fact, or YELLOW/RED/MEDIUM/LOW in a quality alert's title)."""
    facts = alert.facts or {}
    impact: dict[str, Any] = {}
    rate = facts.get("delivery_rate")
    if isinstance(rate, int | float) and not isinstance(rate, bool):
        impact["delivery_rate"] = float(rate)
    elif (m := _RATE_IN_TITLE.search(alert.title)) is not None:
        impact["delivery_rate"] = float(m.group(1)) / 100
    if facts.get("quality_rating"):
        impact["quality_rating"] = str(facts["quality_rating"]).upper()
    elif category == "quality" and (m := _QUALITY_IN_TITLE.search(alert.title)) is not None:
        impact["quality_rating"] = m.group(1)
    return impact


def record_alert(engine: Engine, alert: Any, business_date: dt.date | None, now: dt.datetime) -> Incident | None:
    """A P0 or P1 `include.core.alerting.Alert` opens or joins its incident (dedup key `<category>:<date>`) and
    is appended to the timeline. P2 and info alerts return None. An alert about an existing incident (facts carry
    `incident_id`: the escalation's own "not paged" and reminder posts) is appended to that incident's timeline
    instead, so paging never opens incidents about itself."""
    severity = getattr(alert.severity, "value", alert.severity)
    if severity not in ("P0", "P1"):
        return None
    src = alert.source
    details = {"facts": {k: v for k, v in (alert.facts or {}).items()}, "details": list(alert.details)[:20],
               "source": {"dag_id": src.dag_id, "task_id": src.task_id, "run_id": src.run_id, "url": src.url}}
    actor = f"{src.dag_id}.{src.task_id}" if src.dag_id else "alerting"
    about = (alert.facts or {}).get("incident_id")
    if about:
        append(engine, int(about), "alert", f"[{severity}] {alert.title}", actor, details, now)
        return get(engine, int(about))
    category = alert_category(alert)
    return open_or_join(engine, dedup_key(category, business_date), severity, category, alert.title, business_date,
                        now, alert_impact(alert, category), actor=actor, details=details)


def record_alert_quietly(alert: Any, engine: Engine | None = None, now: dt.datetime | None = None) -> int | None:
    """What `include.core.alerting.post` calls for every alert: `record_alert` with the app database, `now`, and the
    business date from the alert's `business_date` (or `business date`) fact, else today in IST. Never raises (an
    alert must reach Slack even when the database does not answer); returns the incident id or None."""
    severity = getattr(alert.severity, "value", alert.severity)
    if severity not in ("P0", "P1"):
        return None
    try:
        from include.core.dates import ist_today, parse_business_date

        now = now or dt.datetime.now(dt.UTC)
        facts = alert.facts or {}
        given = facts.get("business_date") or facts.get("business date")
        try:
            day = parse_business_date(given) if given else ist_today(now)
        except ValueError:
            day = ist_today(now)
        if engine is None:
            from include.core.db import get_engine

            engine = get_engine()
        incident = record_alert(engine, alert, day, now)
        return incident.incident_id if incident else None
    except Exception as exc:  # noqa: BLE001 - never fail the alert (or its task) for the record
        log.warning("incident not recorded for alert %r: %s: %s", alert.title, type(exc).__name__, exc)
        return None
