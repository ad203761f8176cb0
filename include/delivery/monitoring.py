"""In-window monitoring of the delivery fan-out, run by every sender while it sends (not afterwards).

Pages (P0) when, over the trailing window of API attempts of the business date:
* the failure rate exceeds FAILURE_RATE_PAGE_THRESHOLD (2%) in the last 2 minutes;
* the success rate is under SUCCESS_RATE_FLOOR (95%) in each of the last 2 consecutive minutes;
* the access token is rejected (190).
Each condition alerts once per date and 10-minute bucket, whichever sender sees it first.
"""
from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from include.core import config
from include.core.alerting import Alert, RunRef, Severity
from include.core.db import query

MIN_SAMPLE = 50  # below this many attempts a rate is too noisy to page on


def _stats(engine: Engine, business_date: dt.date, window_s: int, offset_s: int = 0):
    with engine.connect() as conn:
        return conn.execute(query("fanout/window_stats"), {"business_date": business_date, "window_s": window_s,
                                                            "offset_s": offset_s}).one()


def check_window(engine: Engine, business_date: dt.date, context: dict | None,
                 raise_once: Callable[[str, Alert], None]) -> list[str]:
    """Evaluate the in-window rules; returns the names of the conditions that fired."""
    fired = []
    bucket = int(time.time() // 600)
    ref = RunRef.from_context(context)
    window = _stats(engine, business_date, config.FAILURE_RATE_WINDOW_SECONDS)
    decided = window.accepted + window.failed
    if decided >= MIN_SAMPLE and window.failed / decided > config.FAILURE_RATE_PAGE_THRESHOLD:
        fired.append("failure_rate")
        raise_once(f"failure-rate:{bucket}", Alert(
            Severity.P0, f"Failure rate {window.failed / decided:.1%} over the last "
                         f"{config.FAILURE_RATE_WINDOW_SECONDS // 60} min (threshold "
                         f"{config.FAILURE_RATE_PAGE_THRESHOLD:.0%})",
            {"failed": window.failed, "accepted": window.accepted, "business date": business_date.isoformat()}, ref))
    minutes = [_stats(engine, business_date, 60, 0), _stats(engine, business_date, 60, 60)]
    rates = []
    for m in minutes:
        total = m.accepted + m.failed + m.retried
        rates.append(m.accepted / total if total >= MIN_SAMPLE else 1.0)
    if all(r < config.SUCCESS_RATE_FLOOR for r in rates):
        fired.append("success_rate")
        raise_once(f"success-rate:{bucket}", Alert(
            Severity.P0, f"Success rate under {config.SUCCESS_RATE_FLOOR:.0%} for 2 consecutive minutes",
            {"last minute": f"{rates[0]:.1%}", "minute before": f"{rates[1]:.1%}",
             "business date": business_date.isoformat()}, ref))
    if window.auth_errors:
        fired.append("auth")
        raise_once("auth-190", Alert(Severity.P0, "WhatsApp access token rejected (190): sending stopped",
                                     {"auth errors": window.auth_errors}, ref))
    return fired
