"""Who is paged when: the two escalation ladders of the on-call runbooks, as pure functions of an incident and `now`.

No database and no clock here: `due_escalations(incident, now, already_paged)` returns the pages that are due and
not yet sent, and `include/incidents/paging.py` sends and records them. Tests drive hours of escalation in
microseconds by passing `now`.

**Time ladder** (an unacknowledged page climbs the engineering chain; *acknowledgement stops it*):

| step | role | due when |
|---|---|---|
| `time:primary` | primary | at once |
| `time:secondary` | secondary | unacknowledged `FA_ESCALATE_SECONDARY_AFTER_MIN` (5 min) after opening |
| `time:engineering_manager` | engineering_manager | the incident is open (and unacknowledged) more than 30 min |
| `time:cto` | cto | unacknowledged 1 h after opening |

It applies in full to P0 incidents. A P1 pages primary and climbs to secondary only (P1s warn; a person must still
look, but they do not wake the management chain). P2 incidents have no time ladder.

**Impact ladder** (business impact; *acknowledgement does NOT stop it*: an acknowledged incident that still costs
deliveries is still the managers' business). Each level's clock starts when the incident first showed that level
(`impact["since"][level]`, set by records.py; for an incident opened at that level it is the opening time):

| level | condition | pages |
|---|---|---|
| `rate<95` | `impact.delivery_rate` < 0.95 | engineering_manager at once, head_of_product 1 h, cto 4 h |
| `rate<90` | `impact.delivery_rate` < 0.90 | cto at once, ceo 30 min, board 1 h |
| `compliance` | category `compliance` (a SEBI violation) | legal + compliance_officer at once, ceo 15 min |
| `quality` | `impact.quality_rating` MEDIUM or LOW (YELLOW/RED) | head_of_operations now, cto + head_of_marketing 2 h |
| `suspension` | category `account_suspension` | cto + ceo at once |

A rate below 90% is also below 95%, so both rate ladders run. **"Within X"** in the runbook's matrix is read as
*"page at X after the level was reached, unless the incident is resolved by then"*: the runbook promises the
person hears about it no later than X, and paging at the deadline itself keeps the early minutes for the people
who can fix it. **A resolved incident pages nobody.** A step already in `already_paged` is never returned again.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from include.core import config

# -- tunables: the runbooks' values, FA_ settings read when used (include/core/config.py) -----------------------
def secondary_after() -> dt.timedelta:
    return dt.timedelta(minutes=config.ESCALATE_SECONDARY_AFTER_MIN)  # the runbook's "N min"


def engineering_manager_after() -> dt.timedelta:
    return dt.timedelta(minutes=config.ESCALATE_ENGINEERING_MANAGER_AFTER_MIN)


def cto_after() -> dt.timedelta:
    return dt.timedelta(minutes=config.ESCALATE_CTO_AFTER_MIN)


def postmortem_due_after(critical: bool) -> dt.timedelta:
    return dt.timedelta(hours=config.POSTMORTEM_DUE_CRITICAL_H if critical else config.POSTMORTEM_DUE_H)


ROLES = ("primary", "secondary", "engineering_lead", "engineering_manager", "head_of_product", "head_of_operations",
         "head_of_marketing", "compliance_officer", "legal", "cto", "ceo", "board")
SEVERITIES = ("P0", "P1", "P2")  # worst first; text order is rank order
CATEGORIES = ("delivery_rate", "compliance", "quality", "account_suspension", "sla", "security", "operational")
# Meta's quality rating GREEN/YELLOW/RED is HIGH/MEDIUM/LOW in WhatsApp Manager; the runbook says MEDIUM.
_QUALITY_DROPPED = {"MEDIUM", "YELLOW", "LOW", "RED"}

_ZERO = dt.timedelta(0)
def _time_ladder() -> tuple[tuple[str, str, dt.timedelta, tuple[str, ...]], ...]:
    """(step, role, after, who it applies to) - the time ladder; a P1 stops after the secondary."""
    return (
        ("time:primary", "primary", _ZERO, ("P0", "P1")),
        ("time:secondary", "secondary", secondary_after(), ("P0", "P1")),
        ("time:engineering_manager", "engineering_manager", engineering_manager_after(), ("P0",)),
        ("time:cto", "cto", cto_after(), ("P0",)),
    )
# level -> [(role, after)]
_IMPACT_LADDERS: dict[str, tuple[tuple[str, dt.timedelta], ...]] = {
    "rate<95": (("engineering_manager", _ZERO), ("head_of_product", dt.timedelta(hours=1)),
                ("cto", dt.timedelta(hours=4))),
    "rate<90": (("cto", _ZERO), ("ceo", dt.timedelta(minutes=30)), ("board", dt.timedelta(hours=1))),
    "compliance": (("legal", _ZERO), ("compliance_officer", _ZERO), ("ceo", dt.timedelta(minutes=15))),
    "quality": (("head_of_operations", _ZERO), ("cto", dt.timedelta(hours=2)),
                ("head_of_marketing", dt.timedelta(hours=2))),
    "suspension": (("cto", _ZERO), ("ceo", _ZERO)),
}
_LEVEL_TEXT = {"rate<95": "delivery rate below 95%", "rate<90": "delivery rate below 90%",
               "compliance": "compliance incident (SEBI violation)", "quality": "number quality dropped to MEDIUM",
               "suspension": "account suspension"}


@dataclass(frozen=True)
class IncidentView:
    """What the ladders need to know about an incident (a row of `incidents`)."""

    incident_id: int
    severity: str
    category: str
    opened_at: dt.datetime
    acknowledged_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    impact: Mapping[str, Any] = field(default_factory=dict)
    dedup_key: str = ""
    trigger: str = ""


@dataclass(frozen=True)
class Page:
    role: str
    step: str      # stable: the dedup of incident_pages (incident, role, step)
    reason: str
    due_at: dt.datetime
    ladder: str    # 'time' or 'impact'


def worse(a: str, b: str) -> str:
    """The worse of two severities (P0 is the worst), by the alerting's own rank."""
    from include.core.alerting import Severity, worst

    return worst([Severity(a), Severity(b)]).value


def impact_levels(category: str, impact: Mapping[str, Any]) -> list[str]:
    """The impact levels an incident shows now, from its category and figures."""
    levels: list[str] = []
    rate = impact.get("delivery_rate")
    if isinstance(rate, int | float) and not isinstance(rate, bool):
        # The report's thresholds (FA_DELIVERY_RATE_WARNING / _CRITICAL): one home for "below 95% / 90%".
        if rate < config.DELIVERY_RATE_WARNING:
            levels.append("rate<95")
        if rate < config.DELIVERY_RATE_CRITICAL:
            levels.append("rate<90")
    if category == "compliance":
        levels.append("compliance")
    if str(impact.get("quality_rating") or "").upper() in _QUALITY_DROPPED:
        levels.append("quality")
    if category == "account_suspension":
        levels.append("suspension")
    return levels


def _since(incident: IncidentView, level: str) -> dt.datetime:
    raw = (incident.impact.get("since") or {}).get(level)
    if isinstance(raw, dt.datetime):
        return raw
    if isinstance(raw, str) and raw:
        return dt.datetime.fromisoformat(raw)
    return incident.opened_at


def ladder(incident: IncidentView) -> list[Page]:
    """Every page of the incident's ladders with its due time, whether due yet or not (earliest first)."""
    pages: list[Page] = []
    for step, role, after, severities in _time_ladder():
        if incident.severity in severities:
            reason = (f"{incident.severity} incident #{incident.incident_id} "
                      + ("opened" if after == _ZERO else f"unacknowledged after {_human(after)}"))
            pages.append(Page(role, step, reason, incident.opened_at + after, "time"))
    for level in impact_levels(incident.category, incident.impact):
        start = _since(incident, level)
        for role, after in _IMPACT_LADDERS[level]:
            when = "at once" if after == _ZERO else f"{_human(after)} after it began"
            pages.append(Page(role, f"{level}:{role}", f"{_LEVEL_TEXT[level]} ({when})", start + after, "impact"))
    return sorted(pages, key=lambda p: (p.due_at, p.step))


def due_escalations(incident: IncidentView, now: dt.datetime,
                    already_paged: Iterable[tuple[str, str]] = ()) -> list[Page]:
    """The pages due at `now` that were not sent yet: the time ladder until acknowledged, the impact ladder until
    resolved; nothing for a resolved incident."""
    if incident.resolved_at is not None and incident.resolved_at <= now:
        return []
    sent = set(already_paged)
    acked = incident.acknowledged_at is not None and incident.acknowledged_at <= now
    return [p for p in ladder(incident)
            if p.due_at <= now and (p.role, p.step) not in sent and not (acked and p.ladder == "time")]


def _human(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def is_critical_category(category: str) -> bool:
    """Runbook 001's critical incidents: security, compliance (a SEBI violation reached advisors) and account
    suspension (the WhatsApp Business account, so nothing can be sent). Their post-mortem is due in 48 h, not
    24 h: they need legal/compliance review and the platform's own findings before the write-up is final."""
    return category in CRITICAL_CATEGORIES


CRITICAL_CATEGORIES = frozenset({"security", "compliance", "account_suspension"})


def postmortem_due(severity: str, category: str, opened_at: dt.datetime) -> dt.datetime | None:
    """When a P0's post-mortem is due: opened + 24 h (runbook 000), + 48 h for critical categories (runbook 001).
    Other severities have none."""
    if severity != "P0":
        return None
    return opened_at + postmortem_due_after(is_critical_category(category))
