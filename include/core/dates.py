"""Business-date rules: every run works on a date in Asia/Kolkata taken from `run_after`."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class ServedDate:
    """Which business date a DAG's runs serve: the one rule every task resolves its date with.

    An operator's `business_date` Param wins when given (parsed, future dates refused where they make no
    sense); otherwise the date is the run's `run_after` in IST plus `offset_days`. `logical_date` is never
    read: it is None for manual runs in Airflow 3."""

    offset_days: int
    allow_future: bool
    default: str  # how the UI's Param and doc_md say it

    def resolve(self, params: Mapping[str, Any] | None, run_after: dt.datetime | None) -> dt.date:
        given = (params or {}).get("business_date")
        if given:
            return parse_business_date(given, allow_future=self.allow_future)
        if run_after is None:
            raise ValueError("the run has no run_after and no business_date was given")
        return business_date_from_run_after(run_after, self.offset_days)


# The morning's DAGs (05:50 check, 06:00 fan-out, 06:05-06:30 reports) and maintenance serve the run's own date.
TODAY = ServedDate(0, True, "today in IST (the run's date)")
# The 20:30 nightly window prepares the packs of the next morning.
TOMORROW = ServedDate(1, True, "tomorrow in IST: the 20:30 window prepares the next morning's packs")
# Operator actions on deliveries: today unless told otherwise, never a day that has not happened.
OPERATOR = ServedDate(0, False, "today in IST; a future date is refused")


def business_date(context: Mapping[str, Any], serves: ServedDate = TODAY) -> dt.date:
    """The business date of the running task, by the rule of the DAG it belongs to. A run triggered by an asset
    event that names a business date (include/core/assets.py: `approved_packs`) serves that date unless the
    operator's Param says otherwise."""
    params = context.get("params")
    if not (params or {}).get("business_date"):
        from include.core.assets import business_date_of_triggering_event

        given = business_date_of_triggering_event(context)
        if given:
            params = {**(params or {}), "business_date": given}
    return serves.resolve(params, getattr(context.get("dag_run"), "run_after", None))
