"""Content readiness: the approval backlog, and deciding which pack every eligible advisor gets.

`assign_content` is the one function that both the nightly window and the pre-delivery check use:
approved, QC-passed content first; otherwise a rotating evergreen fallback with the reason recorded.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from include.core import config
from include.core.db import query

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingPack:
    pack_id: int
    pack_key: str
    scope: str
    segment: str | None
    advisor_id: int | None
    title: str
    risk_level: int
    submitted_at: dt.datetime


@dataclass(frozen=True)
class Assignment:
    eligible: int
    assigned: int
    approved: int
    fallback: int
    demoted: int
    newly_fallback: int

    @property
    def unassigned(self) -> int:
        return self.eligible - self.assigned


def approval_backlog(engine: Engine, business_date: dt.date) -> list[PendingPack]:
    with engine.connect() as conn:
        return [PendingPack(*row) for row in conn.execute(query("content/pending_for_date"),
                                                          {"business_date": business_date})]


def assign_content(engine: Engine, business_date: dt.date,
                   rotation_days: int = config.FALLBACK_ROTATION_DAYS) -> Assignment:
    """Assign approved content or an evergreen fallback to every eligible advisor, atomically."""
    with engine.begin() as conn:
        demoted = conn.execute(query("content/demote_failed_renders"), {"business_date": business_date}).rowcount
        conn.execute(query("content/assign_approved"), {"business_date": business_date})
        newly = conn.execute(query("content/assign_fallbacks"), {
            "business_date": business_date, "rotation_days": rotation_days,
            "reason": "no approved pack with a QC-passed render for this advisor"}).rowcount
        row = conn.execute(query("content/readiness"), {"business_date": business_date}).one()
    result = Assignment(eligible=row.eligible, assigned=row.assigned, approved=row.approved, fallback=row.fallback,
                        demoted=demoted, newly_fallback=newly)
    log.info("content for %s: %s", business_date, result)
    return result
