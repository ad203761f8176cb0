"""Monthly compliance review: an audit-trail validation of every message sent in the month.

Each sent message must have an approved (or evergreen fallback) pack for its date with the SEBI
disclaimer, a QC-passed render, consent on record before the send, and no do-not-contact entry at
send time. Operator actions that leave state behind (the kill switch, a number rotation) must each
have an `audit_log` row. Violations are reported row by row (CSV in object storage, Slack, the
check result), never summarised away.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging

from sqlalchemy.engine import Engine

from include.core import config
from include.core.alerting import Severity
from include.core.checks import CheckResult
from include.core.db import query

log = logging.getLogger(__name__)


def month_bounds(day: dt.date) -> tuple[dt.date, dt.date]:
    """The calendar month before `day` (the review runs on the first Sunday for the month just ended)."""
    first_this = day.replace(day=1)
    start = (first_this - dt.timedelta(days=1)).replace(day=1)
    return start, first_this


def review(engine: Engine, month_start: dt.date, month_end: dt.date) -> tuple[CheckResult, list[dict]]:
    result = CheckResult("compliance_review")
    params = {"month_start": month_start, "month_end": month_end,
              "phrases": [f"%{p}%" for p in config.DISCLAIMER_REQUIRED_PHRASES]}
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query("compliance/violations"), params)]
        sent = conn.execute(query("compliance/sent_count"), params).scalar_one()
    by_rule: dict[str, int] = {}
    for r in rows:
        by_rule[r["rule"]] = by_rule.get(r["rule"], 0) + 1
    result.facts.update(month=f"{month_start:%Y-%m}", messages_sent=sent, violations=len(rows), by_rule=by_rule)
    if rows:
        result.escalate(Severity.P1, f"{len(rows)} compliance violation(s) in {month_start:%B %Y}: "
                                     + ", ".join(f"{k} {v}" for k, v in sorted(by_rule.items())))
        result.items.extend(
            f"{r['rule']}: " + (f"{r['business_date']} advisor {r['advisor_id']} (delivery {r['delivery_id']}): "
                                if r["advisor_id"] else "") + r["detail"] for r in rows[:200])
    result.summary = f"{sent} messages reviewed, {len(rows)} violation(s)"
    return result, rows


def violations_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=["rule", "business_date", "advisor_id", "delivery_id", "detail"])
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()
