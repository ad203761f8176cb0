"""The delivery SLA, computed in one place: the share of the sendable plan accepted within the send window.

"Sendable" is the plan minus the advisors skipped at send time (DNC, opted out): they were never to be
messaged, so they count neither for nor against the SLA. An empty sendable plan meets it. The fan-out's
`validate_delivery_sla` and the 06:05 checkpoint both read this, so they can never disagree.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from include.core import config
from include.core.db import query


def accepted_ratio(accepted_within_window: int, planned: int, skipped: int) -> float:
    """Accepted within the window over the sendable plan (planned minus skipped); 1.0 when nothing was sendable."""
    sendable = max(0, planned - skipped)
    return accepted_within_window / sendable if sendable else 1.0


@dataclass(frozen=True)
class SlaMeasure:
    ratio: float
    target: float
    window_s: int
    figures: dict[str, Any]  # the fanout/sla row: planned, accepted, accepted_by_deadline, skipped, failed...

    @property
    def met(self) -> bool:
        return self.ratio >= self.target

    def miss(self) -> str:
        """How an alert says it was missed."""
        return (f"{self.ratio:.2%} accepted within {self.window_s // 60} min (target {self.target:.0%})")


def measure(engine: Engine, business_date: dt.date) -> SlaMeasure:
    window_s = config.SEND_WINDOW_SECONDS
    with engine.connect() as conn:
        row = conn.execute(query("fanout/sla"), {"business_date": business_date, "window_s": window_s}).one()
    figures = dict(row._mapping)
    return SlaMeasure(accepted_ratio(row.accepted_by_deadline, row.planned, row.skipped),
                      config.ACCEPTED_SLA_RATIO, window_s, figures)
