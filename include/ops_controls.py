"""The kill switch: pausing and resuming all sending, with a mandatory reason and an audit row."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from include import audit
from include.db import query


@dataclass(frozen=True)
class SendingState:
    paused: bool
    reason: str | None
    changed_by: str
    changed_at: dt.datetime


def require_reason(reason: object) -> str:
    text = str(reason or "").strip()
    if not text:
        raise ValueError("a reason is required for this operator action (it goes into the audit log)")
    return text


def sending_state(engine: Engine) -> SendingState:
    with engine.connect() as conn:
        row = conn.execute(query("ops/sending_state")).one()
    return SendingState(*row)


def is_sending_paused(engine: Engine) -> bool:
    return sending_state(engine).paused


def set_sending_paused(engine: Engine, paused: bool, reason: object, actor: str) -> SendingState:
    """Flip the kill switch and record who did it and why, atomically."""
    why = require_reason(reason)
    with engine.begin() as conn:
        before = conn.execute(query("ops/sending_state")).one()
        row = conn.execute(query("ops/set_sending_paused"), {"paused": paused, "reason": why, "actor": actor}).one()
        audit.record(conn, actor, "pause_sending" if paused else "resume_sending", "sending", why,
                     {"was_paused": before[0]})
    return SendingState(*row)
