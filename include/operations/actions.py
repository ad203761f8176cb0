"""Operator actions behind the manual ops_* DAGs. Each validates its parameters before changing
anything, does its work in one transaction, and writes an audit row in that same transaction."""
from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Engine

from include.core import audit
from include.core.db import query
from include.delivery.cooldown_store import held_numbers, record_hold
from include.delivery.kill_switch import require_reason
from include.delivery.fanout.error_policy import retryable_code
from include.whatsapp.client import ERROR_CLASSES


def retry_failed_deliveries(engine: Engine, business_date: dt.date, reason: str, actor: str) -> dict:
    """Re-queue the date's failures whose code is retryable; permanent failures are never touched."""
    why = require_reason(reason)
    with engine.begin() as conn:
        codes = {row.error_code: row.n for row in conn.execute(query("deliveries/failed_codes"),
                                                               {"business_date": business_date})}
        retry = sorted(c for c in codes if retryable_code(c))
        kept = {str(c): n for c, n in codes.items() if c not in retry}
        unknown = sorted(str(c) for c in codes if c not in ERROR_CLASSES)
        held = held_numbers(engine, "resend")  # re-sends are paused on a number whose quality dropped
        held_counts = {r.phone_number_id: r.n for r in conn.execute(
            query("cooldown/failed_by_number"), {"business_date": business_date, "codes": retry})
            if r.phone_number_id in held} if retry else {}
        for number, n in held_counts.items():
            record_hold(conn, business_date, number, "resend", n, held[number], actor)
        requeued = conn.execute(query("deliveries/requeue_codes"), {
            "business_date": business_date, "codes": retry, "held_numbers": sorted(held)}).rowcount if retry else 0
        details = {"business_date": business_date, "requeued": requeued, "retryable_codes": retry,
                   "left_failed_by_code": kept, "unknown_codes_kept": unknown,
                   "held_by_quality_cooldown": {held[k]: v for k, v in held_counts.items()}}
        audit.record(conn, actor, "retry_failed_deliveries", str(business_date), why, details)
    return details


def authorise_backfill(engine: Engine, business_date_value: object, reason: str, actor: str) -> dict:
    """Validate a backfill request (a past or current date, a reason) and audit it before anything is sent."""
    from include.core.dates import ist_today, parse_business_date

    from include.maintenance.retention import refuse_archived_date

    day = parse_business_date(business_date_value, allow_future=False)
    why = require_reason(reason)
    refuse_archived_date(engine, day)  # past retention, "already sent" can no longer be checked
    if day == ist_today():
        note = "today: this is a rerun of today's delivery; already-sent advisors are skipped"
    else:
        note = "past date: the plan is built if missing; already-sent advisors are skipped"
    with engine.begin() as conn:
        audit.record(conn, actor, "backfill_delivery", str(day), why, {"note": note})
    return {"business_date": day.isoformat(), "note": note}


SETTLE_DECISIONS = ("resend", "mark_failed")


def settle_unknown_deliveries(engine: Engine, business_date: dt.date, decision: str, reason: str, actor: str) -> dict:
    """An operator settles the date's sends whose outcome stayed unknown (post-delivery lists them): first the
    automatic rule runs once more on the latest webhooks, then what is left is resent or closed as failed, with
    the decision and its reason in the audit log. 'resend' may message someone twice if WhatsApp did accept
    the lost request: that risk is the operator's to take, never the sender's."""
    from include.core import config
    from include.delivery.unknown_outcomes import settle_date

    if decision not in SETTLE_DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(SETTLE_DECISIONS)}, got {decision!r}")
    why = require_reason(reason)
    automatic = settle_date(engine, business_date)
    with engine.begin() as conn:
        changed = conn.execute(query("deliveries/settle_unknown"), {
            "business_date": business_date, "decision": decision,
            "stale_s": config.SENDER_STALE_SENDING_S}).rowcount
        details = {"business_date": business_date, "decision": decision, "rows": changed,
                   "settled_by_webhooks_first": {"accepted": automatic.accepted, "requeued": automatic.requeued}}
        audit.record(conn, actor, "settle_unknown_deliveries", str(business_date), why, details)
    return details
