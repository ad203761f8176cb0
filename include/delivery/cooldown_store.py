"""The quality-drop recovery plan as state in the database (`number_ramps`, migration 0016), applying the pure
policy of include/delivery/cooldown.py:

* `record_drops`: a number rated YELLOW or RED without an open ramp gets one (cooldown at 0%), its content
  review is written, and the backup template variant is preferred while any ramp is open
  (include/content/templates.py `decide_variants`).
* `evaluate_day`: each open ramp judged once per business date with that morning's quality.
* Covers: while a number ramps, the active hot spare serves an overflow shard (FA_COOLDOWN_COVER_SHARD_OFFSET +
  the number's shard), because the senders send per shard (include/delivery/fanout). A number that the RED
  rotation retired comes back on its shard when its share rises above 0%, the number that took its shard
  becoming its cover. When the ramp ends the cover steps back to hot spare.
* `apply_to_plan`: in the planner's transaction, the ramped number keeps at most share% of its normal share;
  the rest moves to the cover, then to other healthy primaries, each within its capacity; the rest is reported.
* `held_numbers` / `record_hold`: non-critical sends (canary, re-sends) refused on a dropped number, recorded.
* `override`: an operator's share or end of cooldown, audited.

The evaluation instant of a business date is its 05:50 IST slot (`slot`), so simulated days are deterministic.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.core import audit, config
from include.core.db import query
from include.delivery import cooldown

log = logging.getLogger(__name__)
SYSTEM_ACTOR = "quality_cooldown"


def slot(business_date: dt.date) -> dt.datetime:
    """The instant a business date is judged: its 05:50 IST pre-delivery check."""
    hh, mm = (int(x) for x in config.SCHEDULE_PRE_DELIVERY_CHECK.split()[1::-1])
    return dt.datetime.combine(business_date, dt.time(hh, mm), tzinfo=config.IST)


def _ramp(row) -> cooldown.Ramp:
    return cooldown.Ramp(started_at=row.started_at, cooldown_until=row.cooldown_until, share_pct=row.share_pct,
                         step=row.step, last_evaluated_day=row.last_evaluated_day,
                         last_healthy_day=row.last_healthy_day, ended=row.ended_at is not None)


def _save(conn: sa.Connection, ramp_id: int, r: cooldown.Ramp, ended_reason: str | None = None) -> None:
    conn.execute(query("cooldown/update_ramp"), {
        "ramp_id": ramp_id, "share_pct": r.share_pct, "step": r.step, "cooldown_until": r.cooldown_until,
        "last_evaluated_day": r.last_evaluated_day, "last_healthy_day": r.last_healthy_day, "ended": r.ended,
        "ended_reason": ended_reason})


def open_ramps(engine: Engine) -> list:
    with engine.connect() as conn:
        return conn.execute(query("cooldown/open_ramps")).fetchall()


# -- drops ------------------------------------------------------------------------------------------------------
@dataclass
class DropRecorded:
    phone_number_id: str
    display_phone: str
    quality: str
    ramp_id: int
    cooldown_until: dt.datetime
    review: dict = field(default_factory=dict)


def record_drops(engine: Engine, business_date: dt.date, actor: str = SYSTEM_ACTOR) -> list[DropRecorded]:
    """Open a ramp for every number whose quality dropped and that has none, and write its content review."""
    from include.delivery import content_review

    at = slot(business_date)
    out = []
    with engine.connect() as conn:
        candidates = conn.execute(query("cooldown/drop_candidates")).fetchall()
    for n in candidates:
        r = cooldown.open_ramp(at, config.COOLDOWN_HOURS)
        reason = (f"quality {n.quality_rating} on {business_date}"
                  + ("" if n.active else " (retired by the RED rotation)"))
        with engine.begin() as conn:
            ramp_id = conn.execute(query("cooldown/insert_ramp"), {
                "phone_number_id": n.phone_number_id, "shard": n.shard, "started_at": r.started_at,
                "reason": reason, "quality": n.quality_rating, "cooldown_until": r.cooldown_until}).scalar()
            if ramp_id is None:
                continue  # another check opened it meanwhile
            audit.record(conn, actor, "open_quality_cooldown", n.phone_number_id, reason,
                         {"cooldown_until": r.cooldown_until, "share_pct": 0, "business_date": business_date})
        review = content_review.write_review(engine, n.phone_number_id, n.display_phone, n.quality_rating,
                                             business_date, at)
        with engine.begin() as conn:
            conn.execute(query("cooldown/set_report"), {"ramp_id": ramp_id, "uri": review["html"]})
        log.warning("quality drop on %s (%s): cooldown until %s, content review %s", n.display_phone,
                    n.quality_rating, r.cooldown_until, review["html"])
        out.append(DropRecorded(n.phone_number_id, n.display_phone, n.quality_rating, ramp_id, r.cooldown_until,
                                review))
    return out


# -- the day's evaluation and the covers -------------------------------------------------------------------------
def evaluate_day(engine: Engine, business_date: dt.date, qualities: dict[str, str] | None = None,
                 actor: str = SYSTEM_ACTOR) -> list[dict]:
    """Judge every open ramp for `business_date` (quality: `qualities` or the stored rating), then put the covers
    and the ramped numbers in the roles their shares need. Returns one line of facts per ramp."""
    at = slot(business_date)
    out = []
    with engine.begin() as conn:
        for row in conn.execute(query("cooldown/lock_open_ramps"), {"n": None}).fetchall():
            quality = cooldown.normal_quality((qualities or {}).get(row.phone_number_id, row.quality_rating))
            d = cooldown.evaluate_day(_ramp(row), business_date, quality, at, config.COOLDOWN_HOURS,
                                      config.COOLDOWN_STEP_PCT)
            if d.changed:
                _save(conn, row.ramp_id, d.ramp, "ramp complete: back to 100%" if d.ramp.ended else None)
                conn.execute(query("cooldown/record_day"), {
                    "ramp_id": row.ramp_id, "business_date": business_date, "quality": quality,
                    "share_pct": d.ramp.share_pct, "decision": d.decision})
            roles = _arrange(conn, row, d.ramp, actor, business_date)
            out.append({"number": row.display_phone, "phone_number_id": row.phone_number_id, "quality": quality,
                        "share_pct": d.ramp.share_pct, "step": d.ramp.step, "ended": d.ramp.ended,
                        "cooldown_until": d.ramp.cooldown_until, "decision": d.decision, **roles})
    return out


def _arrange(conn: sa.Connection, row, r: cooldown.Ramp, actor: str, business_date: dt.date) -> dict:
    """The roles a ramp's share needs: a cover while it is below 100%, the number back on its shard once it
    carries traffic again, the cover back to hot spare when the ramp ends."""
    cover, cover_shard = row.cover_number, row.cover_shard
    if r.ended:
        if not row.active and row.shard is not None:  # ended (override) while retired: back on its shard
            holder = conn.execute(query("cooldown/primary_on_shard"), {"shard": row.shard}).fetchone()
            if holder is not None and holder.phone_number_id != cover:
                conn.execute(query("cooldown/set_number_role"), {"n": holder.phone_number_id, "role": "hot_spare",
                                                                 "shard": None, "active": True})
            conn.execute(query("cooldown/set_number_role"), {"n": row.phone_number_id, "role": "primary",
                                                             "shard": row.shard, "active": True})
        if cover:
            conn.execute(query("cooldown/set_number_role"), {"n": cover, "role": "hot_spare", "shard": None,
                                                             "active": True})
            audit.record(conn, actor, "release_cooldown_cover", cover, f"ramp of {row.phone_number_id} ended",
                         {"ramped_number": row.phone_number_id, "cover_shard": cover_shard})
        return {"cover": None}
    if not row.active and r.share_pct > 0 and row.shard is not None:
        # Retired by the RED rotation: it comes back on its shard; the number that took the shard covers it.
        holder = conn.execute(query("cooldown/primary_on_shard"), {"shard": row.shard}).fetchone()
        cover_shard = config.COOLDOWN_COVER_SHARD_OFFSET + row.shard
        if holder is not None:
            conn.execute(query("cooldown/set_number_role"), {"n": holder.phone_number_id, "role": "primary",
                                                             "shard": cover_shard, "active": True})
        conn.execute(query("cooldown/set_number_role"), {"n": row.phone_number_id, "role": "primary",
                                                         "shard": row.shard, "active": True})
        cover = holder.phone_number_id if holder is not None else None
        conn.execute(query("cooldown/set_cover"), {"ramp_id": row.ramp_id, "cover": cover,
                                                   "cover_shard": cover_shard if cover else None})
        audit.record(conn, actor, "reinstate_ramped_number", row.phone_number_id,
                     f"quality cooldown over: back on shard {row.shard} at {r.share_pct}%",
                     {"cover": cover, "cover_shard": cover_shard, "business_date": business_date})
        return {"cover": cover, "cover_shard": cover_shard if cover else None}
    if row.active and row.role == "primary" and not cover:
        spare = conn.execute(query("cooldown/spare_for_cover")).fetchone()
        if spare is not None:
            cover, cover_shard = spare.phone_number_id, config.COOLDOWN_COVER_SHARD_OFFSET + row.number_shard
            conn.execute(query("cooldown/set_number_role"), {"n": cover, "role": "primary", "shard": cover_shard,
                                                             "active": True})
            conn.execute(query("cooldown/set_cover"), {"ramp_id": row.ramp_id, "cover": cover,
                                                       "cover_shard": cover_shard})
            audit.record(conn, actor, "assign_cooldown_cover", cover,
                         f"carries the overflow of {row.phone_number_id} on shard {cover_shard}",
                         {"ramped_number": row.phone_number_id, "business_date": business_date})
    return {"cover": cover, "cover_shard": cover_shard if cover else None}


# -- the planner ------------------------------------------------------------------------------------------------
def _capacity(throughput_mps: int) -> int:
    if config.COOLDOWN_NUMBER_DAILY_CAPACITY:
        return config.COOLDOWN_NUMBER_DAILY_CAPACITY
    return int(throughput_mps * config.SEND_WINDOW_SECONDS * config.SENDER_RATE_HEADROOM)


def apply_to_plan(conn: sa.Connection, business_date: dt.date) -> list[dict]:
    """Within the planner's transaction, after the plan is built: hold each ramped number to share% of its normal
    share and move the overflow. Returns, per ramp: share, normal share, kept, moved per target, unplaced."""
    ramps = [r for r in conn.execute(query("cooldown/open_ramps")).fetchall()
             if r.active and r.role == "primary" and r.share_pct < 100]
    if not ramps:
        return []
    ramped = {r.phone_number_id for r in ramps}
    out = []
    for r in ramps:
        load = {x.phone_number_id: x for x in conn.execute(query("cooldown/plan_load"),
                                                           {"business_date": business_date})}
        mine = load.get(r.phone_number_id)
        normal = mine.planned if mine else 0
        allowed = cooldown.cap(normal, r.share_pct)
        excess = min(max(0, normal - allowed), mine.movable if mine else 0)
        others = sorted((x for x in load.values() if x.phone_number_id not in ramped
                         and x.phone_number_id != r.cover_number and x.status == "CONNECTED"
                         and cooldown.normal_quality(x.quality_rating) not in ("YELLOW", "RED")),
                        key=lambda x: (x.planned, x.shard))
        targets = ([load[r.cover_number]] if r.cover_number in load else []) + others
        moves, unplaced = cooldown.allocate(
            excess, [(x.phone_number_id, _capacity(x.throughput_mps) - x.planned) for x in targets])
        moved = {}
        for target, n in moves:
            t = load[target]
            moved[t.display_phone] = conn.execute(query("cooldown/move_plan_rows"), {
                "business_date": business_date, "from_number": r.phone_number_id, "to_number": target,
                "to_shard": t.shard, "n": n}).rowcount
        unplaced += max(0, normal - allowed) - excess  # rows already handed to the sender cannot move
        out.append({"number": r.display_phone, "phone_number_id": r.phone_number_id, "share_pct": r.share_pct,
                    "normal_share": normal, "cap": allowed, "kept": normal - sum(moved.values()), "moved": moved,
                    "unplaced": unplaced})
        log.info("ramp %s at %d%%: normal share %d, cap %d, moved %s, unplaced %d", r.display_phone, r.share_pct,
                 normal, allowed, moved, unplaced)
    return out


# -- non-critical sends ----------------------------------------------------------------------------------------
def held_numbers(engine: Engine, kind: str) -> dict[str, str]:
    """phone_number_id -> why a send of this kind may not go out on it now (dropped quality or a ramp)."""
    with engine.connect() as conn:
        rows = conn.execute(query("cooldown/number_states")).fetchall()
    out = {}
    for r in rows:
        why = cooldown.hold_reason(kind, r.quality_rating, r.share_pct)
        if why:
            out[r.phone_number_id] = f"{r.display_phone}: {why}"
    return out


def record_hold(conn: sa.Connection, business_date: dt.date, phone_number_id: str, kind: str, count: int,
                reason: str, actor: str) -> None:
    conn.execute(query("cooldown/insert_hold"), {
        "business_date": business_date, "phone_number_id": phone_number_id,
        "message_class": cooldown.classify(kind).value, "held_count": count, "reason": reason, "actor": actor})


# -- operator override -----------------------------------------------------------------------------------------
def override(engine: Engine, phone_number_id: str, share_pct: int | None, end_cooldown: bool, reason: str,
             actor: str) -> dict:
    """ops_override_number_ramp: set a ramped number's share, or end its cooldown (back to 100%), audited."""
    from include.delivery.kill_switch import require_reason

    why = require_reason(reason)
    with engine.begin() as conn:
        row = conn.execute(query("cooldown/lock_open_ramps"), {"n": phone_number_id}).fetchone()
        if row is None:
            known = [r.phone_number_id for r in conn.execute(query("cooldown/lock_open_ramps"), {"n": None})]
            raise ValueError(f"number {phone_number_id!r} has no open quality cooldown "
                             f"(numbers in cooldown: {', '.join(known) or 'none'})")
        before = _ramp(row)
        after = cooldown.override(before, share_pct, end_cooldown)
        _save(conn, row.ramp_id, after, f"operator override by {actor}: {why}" if after.ended else None)
        conn.execute(query("cooldown/set_override"), {"ramp_id": row.ramp_id, "reason": why, "actor": actor})
        roles = _arrange(conn, row, after, actor, dt.datetime.now(config.IST).date())
        details = {"share_before": before.share_pct, "share_after": after.share_pct, "ended": after.ended,
                   "end_cooldown": end_cooldown, "cooldown_until": after.cooldown_until, **roles}
        audit.record(conn, actor, "override_number_ramp", phone_number_id, why, details)
    log.warning("operator %s overrode the ramp of %s: %s", actor, phone_number_id, details)
    return details
