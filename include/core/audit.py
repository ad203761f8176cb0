"""Audit trail: every operator action is written to `audit_log` (who, what, why, when)."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import Connection

from include.core.db import query


def record(conn: Connection, actor: str, action: str, target: str | None = None, reason: str | None = None,
           details: dict[str, Any] | None = None) -> int:
    """Insert one audit row inside the caller's transaction, so the action and its record commit together."""
    return conn.execute(query("audit/insert"), {
        "actor": actor or "unknown", "action": action, "target": target, "reason": reason,
        "details": json.dumps(details or {}, default=str)}).scalar_one()
