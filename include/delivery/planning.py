"""Delivery planning: one `delivery_plan` row per eligible advisor with content, in set-based SQL.

Shards are assigned round-robin over the active primary numbers (balanced to +/-1 row and stable
for the same advisor set); jitter is a per-(advisor, date) hash spread over the jitter window.
Rebuilding is idempotent and never touches a row that already has a delivery.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from include.core import config
from include.core.db import query

log = logging.getLogger(__name__)


@dataclass
class PlanResult:
    business_date: dt.date
    written: int
    removed: int
    total: int
    by_shard: dict[str, int] = field(default_factory=dict)
    by_segment: dict[str, int] = field(default_factory=dict)
    max_jitter_ms: int = 0
    ramps: list[dict] = field(default_factory=list)  # quality-cooldown caps applied (cooldown_store.apply_to_plan)

    @property
    def imbalance(self) -> float:
        """(max - min) / mean shard size; 0 is perfect balance."""
        if not self.by_shard:
            return 0.0
        sizes = list(self.by_shard.values())
        mean = sum(sizes) / len(sizes)
        return (max(sizes) - min(sizes)) / mean if mean else 0.0


def build_plan(engine: Engine, business_date: dt.date, templates: dict[str, str],
               default_language: str = "en", jitter_window_s: int = config.JITTER_WINDOW_SECONDS) -> PlanResult:
    """Write the plan for `business_date`. `templates` maps language -> approved template name."""
    if default_language not in templates:
        raise ValueError(f"no approved template for the default language {default_language!r}: {templates}")
    if jitter_window_s < 1:
        raise ValueError(f"jitter window must be at least 1 s, got {jitter_window_s}")
    if jitter_window_s > config.MAX_JITTER_WINDOW_S:
        raise ValueError(f"jitter window {jitter_window_s} s would end too close to the senders' deadline "
                         f"({config.SENDER_HARD_DEADLINE_S} s): at most {config.MAX_JITTER_WINDOW_S} s, leaving "
                         f"{config.JITTER_DEADLINE_HEADROOM_S} s for retries")
    with engine.begin() as conn:
        removed = conn.execute(query("plan/remove_ineligible"), {"business_date": business_date}).rowcount
        written = conn.execute(query("plan/build"), {
            "business_date": business_date, "templates": json.dumps(templates),
            "default_language": default_language, "window_ms": jitter_window_s * 1000}).rowcount
        from include.delivery.cooldown_store import apply_to_plan

        ramps = apply_to_plan(conn, business_date)  # ramped numbers keep share% of their share; overflow moves
        stats = conn.execute(query("plan/stats"), {"business_date": business_date}).fetchall()
    if written or removed:
        with engine.begin() as conn:
            conn.execute(query("plan/analyze"))
    result = PlanResult(business_date, written, removed, total=sum(r.rows for r in stats), ramps=ramps)
    for r in stats:
        key = f"{r.shard}:{r.phone_number_id}"
        result.by_shard[key] = result.by_shard.get(key, 0) + r.rows
        result.by_segment[r.segment] = result.by_segment.get(r.segment, 0) + r.rows
        result.max_jitter_ms = max(result.max_jitter_ms, r.max_jitter_ms)
    log.info("plan %s: %d rows (%d written, %d removed), shards %s", business_date, result.total, written, removed,
             result.by_shard)
    return result
