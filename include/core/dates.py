"""Business-date rules: every run works on a date in Asia/Kolkata taken from `run_after`."""
from __future__ import annotations

import datetime as dt

from include.core.config import IST


def ist_today(now: dt.datetime | None = None) -> dt.date:
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(IST).date()


def business_date_from_run_after(run_after: dt.datetime, offset_days: int = 0) -> dt.date:
    """The IST calendar date of `run_after` plus `offset_days` (the nightly window prepares tomorrow).

    `logical_date` can be None for manual runs in Airflow 3, so `run_after` is the one source.
    """
    if run_after.tzinfo is None:
        raise ValueError(f"run_after must be timezone-aware, got naive {run_after!r}")
    return run_after.astimezone(IST).date() + dt.timedelta(days=offset_days)


def parse_business_date(value: str | dt.date, *, allow_future: bool = True, today: dt.date | None = None) -> dt.date:
    """Parse an operator-supplied YYYY-MM-DD date, rejecting future dates where they make no sense."""
    if isinstance(value, dt.date):
        parsed = value
    else:
        try:
            parsed = dt.date.fromisoformat(str(value).strip())
        except ValueError as exc:
            raise ValueError(f"business date {value!r} is not a YYYY-MM-DD date") from exc
    if not allow_future and parsed > (today or ist_today()):
        raise ValueError(f"business date {parsed} is in the future (today in IST is {today or ist_today()})")
    return parsed
