"""Monthly capacity planning: growth of advisors, messages, peak messages/s against the numbers'
throughput, and database size; a projection of when the current numbers and messaging tier stop
fitting the 5-minute window, and how many numbers are needed.

`project` is a pure function (least-squares linear growth of eligible advisors per month), tested on
fixture data; `snapshot` records this month's figures so growth is charted from real history.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from include.core import config
from include.core.db import query
from include.whatsapp.platform_limits import TIER_LIMITS

WINDOW_EFFICIENCY = 0.8  # share of the theoretical ceiling the fan-out achieves (see the fan-out benchmark)


@dataclass
class Projection:
    slope_per_month: float
    current: int
    capacity_per_window: int
    months_until_window_full: float | None   # None: not growing
    months_until_tier_full: float | None
    numbers_needed_now: int
    numbers_needed_in_12_months: int
    projected_in_12_months: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    n = len(points)
    if n == 1:
        return 0.0, points[0][1]
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return slope, my - slope * mx


def numbers_needed(advisors: int, mps_per_number: int, window_s: int | None = None,
                   efficiency: float = WINDOW_EFFICIENCY) -> int:
    window_s = config.SEND_WINDOW_SECONDS if window_s is None else window_s
    return max(1, math.ceil(advisors / (mps_per_number * window_s * efficiency)))


def project(history: list[tuple[dt.date, int]], throughput_mps: int, mps_per_number: int,
            tier_limit: int | None, window_s: int | None = None,
            efficiency: float = WINDOW_EFFICIENCY) -> Projection:
    """history: (month, eligible advisors) oldest first. Months until the window / tier is full are
    counted from the last month of the history."""
    window_s = config.SEND_WINDOW_SECONDS if window_s is None else window_s
    if not history:
        raise ValueError("capacity projection needs at least one month of history")
    points = [(i, float(n)) for i, (_, n) in enumerate(history)]
    slope, intercept = _fit(points)
    last_x = len(history) - 1
    current = history[-1][1]
    capacity = int(throughput_mps * window_s * efficiency)

    def months_until(limit: int | None) -> float | None:
        if limit is None:
            return None
        if current >= limit:
            return 0.0
        if slope <= 0:
            return None
        return round((limit - (intercept + slope * last_x)) / slope, 1)

    in_12 = max(current, round(intercept + slope * (last_x + 12)))
    return Projection(round(slope, 1), current, capacity, months_until(capacity), months_until(tier_limit),
                      numbers_needed(current, mps_per_number, window_s, efficiency),
                      numbers_needed(in_12, mps_per_number, window_s, efficiency), in_12)


def snapshot(engine: Engine, month: dt.date) -> dict:
    """Record (or refresh) the figures of the month starting `month`."""
    with engine.begin() as conn:
        row = conn.execute(query("capacity/snapshot"), {"month": month, "next_month": _next_month(month)}).one()
    return dict(row._mapping)


def _next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def history(engine: Engine, months: int = 12) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query("capacity/history"), {"months": months})]


def plan(engine: Engine, today: dt.date) -> dict:
    """Snapshot last month and this month, then project from the recorded history."""
    this_month = today.replace(day=1)
    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    snapshot(engine, last_month)
    snapshot(engine, this_month)
    hist = history(engine)
    with engine.connect() as conn:
        numbers = conn.execute(query("numbers/active")).fetchall()
    primaries = [n for n in numbers if n.role == "primary"]
    throughput = sum(n.throughput_mps for n in primaries) or 1
    per_number = max((n.throughput_mps for n in primaries), default=80)
    tiers = [TIER_LIMITS.get(n.messaging_tier) for n in primaries if n.messaging_tier in TIER_LIMITS]
    tier_limit = None if not tiers or any(t is None for t in tiers) else min(tiers)
    proj = project([(h["month"], h["eligible_advisors"]) for h in hist], throughput, per_number, tier_limit)
    return {"history": hist, "throughput_mps": throughput, "numbers": len(primaries), "tier_limit": tier_limit,
            "projection": proj.as_dict()}


def render_html(result: dict) -> str:
    from include.reporting.daily_report import line_chart

    hist = result["history"]
    labels = [str(h["month"])[:7] for h in hist]
    p = result["projection"]
    charts = "".join([
        line_chart("Eligible advisors per month", labels, {"advisors": [float(h["eligible_advisors"]) for h in hist]},
               limit=p["capacity_per_window"], limit_label=f"5-min window capacity {p['capacity_per_window']:,}"),
        line_chart("Messages accepted per month", labels, {"messages": [float(h["messages_accepted"]) for h in hist]}),
        line_chart("Peak messages/s vs throughput", labels, {"peak msg/s": [float(h["peak_mps"]) for h in hist]},
               limit=float(result["throughput_mps"]), limit_label=f"{result['throughput_mps']} msg/s"),
        line_chart("Database size (MB)", labels, {"MB": [h["db_bytes"] / 1e6 for h in hist]}),
    ])
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Capacity plan</title></head><body>"
            f"<h1>Capacity plan</h1><p>{result['numbers']} numbers, {result['throughput_mps']} msg/s, "
            f"tier limit {result['tier_limit'] or 'unlimited'}. Growth {p['slope_per_month']:+,.0f} advisors/month. "
            f"Window full in {p['months_until_window_full']} months; tier full in {p['months_until_tier_full']} "
            f"months. Numbers needed now {p['numbers_needed_now']}, in 12 months {p['numbers_needed_in_12_months']} "
            f"(for {p['projected_in_12_months']:,} advisors).</p>{charts}</body></html>")
