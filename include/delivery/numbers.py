"""Sending numbers: refresh their WhatsApp status, judge quality and messaging tier, and rotate a
failing number's shard to the hot spare (moving its not-yet-sent rows), with an audit row."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.core import audit
from include.core.db import query
from include.whatsapp.platform_limits import THROUGHPUT_MPS, TIER_LIMITS
from include.whatsapp.client import WhatsAppClient, WhatsAppError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NumberStatus:
    phone_number_id: str
    display_phone: str
    shard: int | None
    role: str
    quality_rating: str
    status: str
    throughput_mps: int
    messaging_tier: str
    error: str | None = None


class RotationError(RuntimeError):
    pass


def tier_limit(tier: str) -> int | None:
    """Unique recipients per rolling 24 h for a messaging tier (None = unlimited)."""
    if tier not in TIER_LIMITS:
        raise ValueError(f"unknown messaging tier {tier!r}")
    return TIER_LIMITS[tier]


def active_numbers(engine: Engine) -> list[NumberStatus]:
    with engine.connect() as conn:
        return [NumberStatus(r.phone_number_id, r.display_phone, r.shard, r.role, r.quality_rating, r.status,
                             r.throughput_mps, r.messaging_tier) for r in conn.execute(query("numbers/active"))]


def refresh_numbers(engine: Engine, client: WhatsAppClient) -> list[NumberStatus]:
    """Read each active number from WhatsApp and store quality, status, throughput and tier.

    The tier is the portfolio's `whatsapp_business_manager_messaging_limit` mapped to a TIER_LIMITS name; a value
    the project does not know (TIER_NOT_SET, a legacy tier, none at all) is stored as "UNKNOWN", which the
    pre-delivery check reports rather than treating as any limit."""
    out = []
    for n in active_numbers(engine):
        try:
            info = client.get_phone_number(n.phone_number_id)
        except WhatsAppError as exc:
            out.append(NumberStatus(**{**n.__dict__, "error": f"{exc.code or ''} {exc}".strip()}))
            continue
        level = info.throughput_level or "STANDARD"
        fresh = NumberStatus(n.phone_number_id, n.display_phone, n.shard, n.role,
                             info.quality_rating, info.status, THROUGHPUT_MPS.get(level, 80), info.messaging_tier)
        with engine.begin() as conn:
            conn.execute(query("numbers/update_status"), {
                "phone_number_id": n.phone_number_id, "quality_rating": fresh.quality_rating
                if fresh.quality_rating in ("GREEN", "YELLOW", "RED", "NA") else "UNKNOWN",
                "status": fresh.status, "throughput_mps": fresh.throughput_mps, "messaging_tier": fresh.messaging_tier})
        out.append(fresh)
    return out


def move_pending_rows(conn: sa.Connection, business_date: dt.date | None, from_number: str, to_number: str) -> int:
    """Within the caller's transaction: move unsent plan rows (and queued deliveries) of a date,
    or of today and every later date when business_date is None."""
    dates = [business_date] if business_date else [
        r[0] for r in conn.execute(query("numbers/pending_dates"), {"n": from_number})]
    moved = 0
    for d in dates:
        moved += conn.execute(query("numbers/move_pending"), {
            "business_date": d, "from_number": from_number, "to_number": to_number}).rowcount
    return moved


def rotate_to_hot_spare(engine: Engine, phone_number_id: str, reason: str, actor: str,
                        business_date: dt.date | None = None) -> dict:
    """Retire a failing primary number; the active hot spare takes its shard and its unsent rows."""
    with engine.begin() as conn:
        rows = conn.execute(query("numbers/lock_for_rotation"), {"n": phone_number_id}).fetchall()
        failing = next((r for r in rows if r.phone_number_id == phone_number_id), None)
        if failing is None:
            raise RotationError(f"unknown sending number {phone_number_id!r}")
        if failing.role != "primary" or not failing.active:
            raise RotationError(f"number {phone_number_id} is not an active primary (role={failing.role}, "
                                f"active={failing.active}); nothing to rotate")
        spare = next((r for r in rows if r.role == "hot_spare" and r.active), None)
        if spare is None:
            raise RotationError(f"no active hot spare to take shard {failing.shard} from {phone_number_id}")
        conn.execute(query("numbers/retire"), {"reason": reason, "n": phone_number_id})
        conn.execute(query("numbers/promote_spare"), {"shard": failing.shard, "n": spare.phone_number_id})
        moved = move_pending_rows(conn, business_date, phone_number_id, spare.phone_number_id)
        details = {"from": phone_number_id, "to": spare.phone_number_id, "shard": failing.shard, "rows_moved": moved,
                   "business_date": business_date}
        audit.record(conn, actor, "rotate_number", phone_number_id, reason, details)
    log.warning("rotated shard %s from %s to hot spare %s (%d rows moved)", failing.shard, phone_number_id,
                spare.phone_number_id, moved)
    return details


def move_between_numbers(engine: Engine, business_date: dt.date, from_number: str, to_number: str, reason: str,
                         actor: str) -> dict:
    """Operator rotation (ops_rotate_number): `to_number` takes over the shard `from_number` serves.

    Senders pick their number from `sending_numbers` by shard on every control tick, so this is what moves
    traffic, in a run already in flight too. `from_number` steps down to hot spare (still active, so the
    operator can rotate back); the unsent plan rows and queued deliveries of `business_date` and every later
    date move with the shard. Validated first, done in one transaction with its audit row."""
    with engine.begin() as conn:
        known = {r.phone_number_id: r for r in conn.execute(query("numbers/lock_all"))}
        for n in (from_number, to_number):
            if n not in known:
                raise ValueError(f"unknown sending number {n!r} (known: {', '.join(sorted(known))})")
        if from_number == to_number:
            raise ValueError("from_number and to_number are the same number")
        source, target = known[from_number], known[to_number]
        if source.role != "primary" or not source.active:
            raise ValueError(f"number {from_number} serves no shard (role={source.role}, active={source.active}); "
                             "nothing to rotate")
        if not target.active or target.status != "CONNECTED" or target.quality_rating == "RED":
            raise ValueError(f"number {to_number} cannot take traffic (active={target.active}, "
                             f"status={target.status}, quality={target.quality_rating})")
        if target.role == "primary":
            raise ValueError(f"number {to_number} already serves shard {target.shard}; rotate to a hot spare")
        conn.execute(query("numbers/demote_to_spare"), {"n": from_number})
        conn.execute(query("numbers/promote_spare"), {"shard": source.shard, "n": to_number})
        dates = sorted({business_date, *(r[0] for r in conn.execute(query("numbers/pending_dates"),
                                                                     {"n": from_number}))})
        moved = sum(move_pending_rows(conn, d, from_number, to_number) for d in dates if d >= business_date)
        details = {"from": from_number, "to": to_number, "shard": source.shard, "business_date": business_date,
                   "rows_moved": moved, "from_number_now": "hot_spare"}
        audit.record(conn, actor, "rotate_number", from_number, reason, details)
    log.warning("operator rotation: shard %s moves from %s to %s (%d unsent rows moved)", source.shard,
                from_number, to_number, moved)
    return details
