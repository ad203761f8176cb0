"""The kill switch: pausing and resuming all sending, with a mandatory reason and an audit row."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from include.core import audit
from include.core.db import query


@dataclass(frozen=True)
class SendingState:
    paused: bool
    reason: str | None
    changed_by: str
    changed_at: dt.datetime
    was_paused: bool | None = None  # the state before this change (set by set_sending_paused only)

    @property
    def changed_at_ist(self) -> str:
        from include.core.config import IST

        return self.changed_at.astimezone(IST).strftime("%Y-%m-%d %H:%M IST") if self.changed_at else "unknown time"

    def describe(self) -> str:
        """'paused by alice at 2026-12-01 05:12 IST: bad content' (or 'sending enabled ...')."""
        what = "paused" if self.paused else "sending enabled"
        why = self.reason or "no reason recorded"
        return f"{what} by {self.changed_by or 'unknown'} at {self.changed_at_ist}: {why}"


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
    return SendingState(*row, was_paused=before[0])


def flip_sending(engine: Engine, paused: bool, reason: object, actor: str, context=None) -> tuple[SendingState, bool]:
    """Pause or resume all sending, audited, then tell on-call: what the ops DAGs and the cockpit's buttons do.
    A missing reason raises ValueError and changes nothing. Returns the new state and whether Slack took the post."""
    state = set_sending_paused(engine, paused, reason, actor)
    return state, announce_sending_change(state, context)


def announce_sending_change(state: SendingState, context=None) -> bool:
    """Tell the on-call channel the kill switch changed: a pause is a P1 (sending stopped is an incident),
    a resume is info. Who, when and why are in the message; posting never fails the flip itself."""
    from include.core.alerting import Alert, RunRef, Severity, post

    facts = {"by": state.changed_by, "reason": state.reason, "at": state.changed_at_ist}
    if state.paused:
        title = f"Kill switch: ALL WhatsApp sending PAUSED by {state.changed_by}"
        facts["effect"] = "senders stop within 2 s; queued rows stay queued; the 05:50 check reports it until resumed"
        facts["to resume"] = "trigger ops_resume_sending with a reason"
        severity = Severity.P1
    else:
        title = f"Kill switch: WhatsApp sending resumed by {state.changed_by}"
        facts["effect"] = "senders continue the queued rows without sending anything twice"
        severity = Severity.INFO
    if state.was_paused is not None and state.was_paused == state.paused:
        facts["note"] = f"sending was already {'paused' if state.paused else 'enabled'}"
    return post(Alert(severity, title, facts, RunRef.from_context(context)))
