"""The on-call roster as data (`oncall_roles`): read a role, and the audited edit behind ops_edit_oncall_roster."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Engine

from include.core import audit
from include.core.db import query
from include.incidents.escalation import ROLES

DISPLAY_NAMES = {"primary": "Primary on-call", "secondary": "Secondary on-call",
                 "engineering_lead": "Engineering lead", "engineering_manager": "Engineering manager",
                 "head_of_product": "Head of product", "head_of_operations": "Head of operations",
                 "head_of_marketing": "Head of marketing", "compliance_officer": "Compliance officer",
                 "legal": "Legal", "cto": "CTO", "ceo": "CEO", "board": "Board notification"}
_ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{32}$")
_CHANNEL = re.compile(r"^[#@][A-Za-z0-9._-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
CLEAR = "-"  # a Param value that clears an optional field (empty keeps the current value)


def masked(key: str | None) -> str | None:
    """A routing key as the audit log and task log show it: only its last 4 characters."""
    return None if not key else f"…{key[-4:]}"


def get_role(engine: Engine, role: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(query("incidents/roster_role"), {"role": role}).fetchone()
    return dict(row._mapping) if row else None


def edit_role(engine: Engine, role: str, changes: Mapping[str, Any], reason: str, actor: str) -> dict[str, Any]:
    """Create or change one role of the roster, audited (before and after, routing keys masked) in the same
    transaction. `changes` holds person, slack_channel, routing_key, email (None or "" keeps the current value,
    "-" clears it) and active (None keeps it). Raises ValueError for bad input, changing nothing."""
    role = (role or "").strip()
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if len((reason or "").strip()) < 3:
        raise ValueError("a reason (at least 3 characters) is required for the audit log")
    with engine.begin() as conn:
        row = conn.execute(query("incidents/roster_role_for_update"), {"role": role}).fetchone()
        before = dict(row._mapping) if row else {"role": role, "display_name": DISPLAY_NAMES[role], "person": None,
                                                 "slack_channel": None, "pagerduty_routing_key": None,
                                                 "email": None, "active": True}
        after = dict(before)
        for field, column, pattern in (("person", "person", None), ("slack_channel", "slack_channel", _CHANNEL),
                                       ("routing_key", "pagerduty_routing_key", _ROUTING_KEY),
                                       ("email", "email", _EMAIL)):
            value = changes.get(field)
            value = value.strip() if isinstance(value, str) else value
            if value in (None, ""):
                continue
            if value == CLEAR:
                after[column] = None
                continue
            if pattern is not None and not pattern.match(value):
                shown = masked(value) if field == "routing_key" else value
                raise ValueError(f"{field} {shown!r} is not valid"
                                 + (" (a PagerDuty routing key is 32 letters and digits)" if field == "routing_key"
                                    else ""))
            after[column] = value
        if changes.get("active") is not None:
            after["active"] = bool(changes["active"])
        conn.execute(query("incidents/upsert_role"), {
            "role": role, "display_name": after["display_name"], "person": after["person"],
            "slack_channel": after["slack_channel"], "pagerduty_routing_key": after["pagerduty_routing_key"],
            "email": after["email"], "active": after["active"], "updated_by": actor})

        def shown(d: Mapping[str, Any]) -> dict[str, Any]:
            keep = ("person", "slack_channel", "email", "active")
            return {**{k: d.get(k) for k in keep}, "routing_key": masked(d.get("pagerduty_routing_key"))}

        changed = {k: [shown(before)[k], shown(after)[k]] for k in shown(after) if shown(before)[k] != shown(after)[k]}
        audit.record(conn, actor, "edit_oncall_roster", target=role, reason=reason.strip(),
                     details={"created": row is None, "changed": changed, "after": shown(after)})
    return {"role": role, "created": row is None, "changed": changed, "after": shown(after)}
