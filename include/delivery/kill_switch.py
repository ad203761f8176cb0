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
    cause: str = "operator"  # who engaged it: 'operator' or 'budget' (the spend guard, include/delivery/budget.py)
    budget_override: list | None = None  # the budgets a resume overrode (set by set_sending_paused only)

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


def _state(row, **kw) -> SendingState:
    return SendingState(row.paused, row.reason, row.changed_by, row.changed_at, cause=row.cause, **kw)


def sending_state(engine: Engine) -> SendingState:
    with engine.connect() as conn:
        row = conn.execute(query("ops/sending_state")).one()
    return _state(row)


def is_sending_paused(engine: Engine) -> bool:
    return sending_state(engine).paused


def set_sending_paused(engine: Engine, paused: bool, reason: object, actor: str,
                       budget_override: object = None) -> SendingState:
    """Flip the kill switch and record who did it and why, atomically.

    A switch the budget guard engaged (cause `budget`) is resumed only with `budget_override`, the reason for
    sending past the budget: it is recorded in `budget_overrides` and in the audit row, in the same transaction.
    Without it the resume raises budget.BudgetOverrideRequired (a ValueError) and changes nothing."""
    why = require_reason(reason)
    override_text = str(budget_override or "").strip()
    with engine.begin() as conn:
        before = conn.execute(query("ops/sending_state")).one()
        details: dict = {"was_paused": before.paused}
        if not paused and before.paused and before.cause == "budget":
            from include.delivery import budget

            if not override_text:
                raise budget.BudgetOverrideRequired(
                    f"sending was stopped by the spend budget ({before.reason}); resuming needs a budget override "
                    "reason (ops_resume_sending's budget_override_reason), which is audited")
            details["budget_override"] = {"reason": override_text,
                                          "budgets": budget.grant_override(conn, actor, override_text)}
        row = conn.execute(query("ops/set_sending_paused"), {"paused": paused, "reason": why, "actor": actor}).one()
        audit.record(conn, actor, "pause_sending" if paused else "resume_sending", "sending", why, details)
    override = details.get("budget_override")
    return _state(row, was_paused=before.paused, budget_override=override["budgets"] if override else None)


def flip_sending(engine: Engine, paused: bool, reason: object, actor: str, context=None,
                 budget_override: object = None) -> tuple[SendingState, bool]:
    """Pause or resume all sending, audited, then tell on-call: what the ops DAGs and the cockpit's buttons do.
    A missing reason (or a missing budget override for a switch the budget engaged) raises ValueError and changes
    nothing. Returns the new state and whether Slack took the post."""
    state = set_sending_paused(engine, paused, reason, actor, budget_override)
    return state, announce_sending_change(state, context)


def announce_sending_change(state: SendingState, context=None) -> bool:
    """Tell the on-call channel the kill switch changed: a pause is a P1 (sending stopped is an incident),
    a resume is info. Who, when and why are in the message; posting never fails the flip itself."""
    from include.core.alerting import Alert, RunRef, Severity, post

    facts = {"by": state.changed_by, "reason": state.reason, "at": state.changed_at_ist}
    if state.paused and state.cause == "budget":
        title = "Kill switch: ALL WhatsApp sending PAUSED by the spend budget guard"
        facts["effect"] = "senders stop within a second; queued rows stay queued; the approvers are paged"
        facts["to resume"] = "trigger ops_resume_sending with a reason and a budget override reason (audited)"
        severity = Severity.P1
    elif state.paused:
        title = f"Kill switch: ALL WhatsApp sending PAUSED by {state.changed_by}"
        facts["effect"] = "senders stop within 2 s; queued rows stay queued; the 05:50 check reports it until resumed"
        facts["to resume"] = "trigger ops_resume_sending with a reason"
        severity = Severity.P1
    else:
        title = f"Kill switch: WhatsApp sending resumed by {state.changed_by}"
        facts["effect"] = "senders continue the queued rows without sending anything twice"
        if state.budget_override is not None:
            facts["budget override"] = ("; ".join(f"{b['period']} ₹{b['spent_inr']} of ₹{b['budget_inr']}"
                                                  for b in state.budget_override) or "no budget exceeded now")
        severity = Severity.INFO
    if state.was_paused is not None and state.was_paused == state.paused:
        facts["note"] = f"sending was already {'paused' if state.paused else 'enabled'}"
    return post(Alert(severity, title, facts, RunRef.from_context(context)))
