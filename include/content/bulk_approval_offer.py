"""The approvers' 21:30 choice (runbook: "approval queue over threshold at night").

At 21:30 IST tomorrow's still-pending low-risk packs are offered to the approvers as one human-in-the-loop
decision in the Airflow UI (Required Actions, linked from their Slack channel): approve every low-risk pack
(risk ≤ FA_BULK_APPROVE_MAX_RISK), approve risk 1 only, or leave them for one-by-one review. The answer approves
exactly the packs that were offered (a pack submitted after the offer was not seen and stays pending), one audit row
each with the approver's name and reason. Unanswered by FA_BULK_APPROVAL_OFFER_TIMEOUT_MIN, nothing is approved.
Riskier packs are never in the offer: they are reviewed one by one.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Engine

from include.core import config
from include.core.alerting import Alert, RunRef, Severity, post

log = logging.getLogger(__name__)

LEAVE = "Leave for one-by-one review"
DEFAULT = [LEAVE]


def approve_up_to(max_risk: int) -> str:
    return "Approve risk 1 only" if max_risk == 1 else f"Approve all low-risk (risk 1-{max_risk})"


def options(max_risk: int | None = None) -> list[str]:
    """The choices: each low-risk ceiling from the highest down, then leaving them all for review."""
    top = config.BULK_APPROVE_MAX_RISK if max_risk is None else max_risk
    return [approve_up_to(r) for r in (range(top, 0, -1) if top > 1 else [1])] + [LEAVE]


def ceiling_for(choice: str, max_risk: int | None = None) -> int | None:
    """The risk ceiling an answer approves up to; None for leaving them. An unknown answer is refused."""
    top = config.BULK_APPROVE_MAX_RISK if max_risk is None else max_risk
    if choice == LEAVE:
        return None
    for r in range(1, top + 1):
        if choice == approve_up_to(r):
            return r
    raise ValueError(f"answer {choice!r} is not one of {options(top)}")


def build_offer(engine: Engine, business_date: dt.date) -> dict | None:
    """What the approvers are offered, or None when no low-risk pack is pending (nobody is asked)."""
    from include.content.readiness import approval_backlog

    pending = approval_backlog(engine, business_date)
    low = [p for p in pending if p.risk_level <= config.BULK_APPROVE_MAX_RISK]
    if not low:
        log.info("no low-risk pack pending for %s: nothing to offer (%d riskier pending)", business_date, len(pending))
        return None
    by_risk = Counter(p.risk_level for p in low)
    lines = [f"* `{p.pack_key}` — risk {p.risk_level}, {p.segment or ('advisor-specific' if p.advisor_id else 'all')}"
             f": {p.title}" for p in low[:25]]
    more = f"\n* … and {len(low) - 25} more" if len(low) > 25 else ""
    body = (f"**{len(low)} low-risk packs for {business_date} are still pending approval** "
            f"({', '.join(f'risk {r}: {n}' for r, n in sorted(by_risk.items()))}); "
            f"{len(pending) - len(low)} riskier packs are left for one-by-one review whatever you answer.\n\n"
            + "\n".join(lines) + more +
            "\n\nYour answer approves exactly the packs listed here, audited with your name and reason.")
    return {"business_date": business_date.isoformat(), "pack_ids": [p.pack_id for p in low],
            "by_risk": {str(r): n for r, n in sorted(by_risk.items())}, "riskier_pending": len(pending) - len(low),
            "subject": f"Bulk-approve {len(low)} low-risk packs for {business_date}?", "body": body}


def apply_answer(engine: Engine, offer: Mapping[str, Any], payload: Mapping[str, Any] | None,
                 context: Mapping[str, Any] | None = None) -> dict:
    """Approve what the answer says, of the offered packs only; audited per pack. Slack hears the outcome."""

    if not payload:
        raise ValueError("the bulk-approval offer returned no answer")
    chosen = list(payload.get("chosen_options") or [])
    if len(chosen) != 1:
        raise ValueError(f"one answer expected, got {chosen!r}")
    business_date = dt.date.fromisoformat(offer["business_date"])
    user = payload.get("responded_by_user") or {}
    by = (user.get("name") or user.get("id")) if isinstance(user, Mapping) else None
    reason = str((payload.get("params_input") or {}).get("reason") or "").strip()
    ceiling = ceiling_for(chosen[0])
    ref = RunRef.from_context(context)
    if not by or ceiling is None:
        why = (f"{by} chose '{LEAVE}'" if by else
               f"no answer within {config.BULK_APPROVAL_OFFER_TIMEOUT_MIN} min: nothing approved in bulk")
        post(Alert(Severity.INFO, f"Bulk approval for {business_date}: nothing approved",
                   {"decision": why, "still pending": len(offer["pack_ids"]) + offer.get("riskier_pending", 0),
                    "next": "review the packs one by one, or ops_bulk_approve with a reason"}, ref),
             conn_id=config.SLACK_APPROVERS_CONN_ID)
        return {"business_date": str(business_date), "approved": [], "decided_by": by, "decision": chosen[0]}
    reason = reason or f"bulk approval offered to the approvers at 21:30; '{chosen[0]}' chosen in the Airflow UI"
    from include.content.nightly_window import bulk_approve

    approved = bulk_approve(engine, business_date, ceiling, reason, by, pack_ids=list(offer["pack_ids"]),
                            via="airflow-ui (21:30 offer)")["approved"]
    not_approved = len(offer["pack_ids"]) - len(approved)
    post(Alert(Severity.INFO, f"Bulk approval for {business_date}: {len(approved)} packs approved by {by}",
               {"answer": chosen[0], "reason": reason,
                "offered but not approved": f"{not_approved} (above the chosen risk, or no longer pending)",
                "next": "nightly_content_window renders and QCs them now (approved_packs asset)"}, ref),
         conn_id=config.SLACK_APPROVERS_CONN_ID)
    return {"business_date": str(business_date), "approved": approved, "decided_by": by,
            "decision": chosen[0], "max_risk": ceiling}
