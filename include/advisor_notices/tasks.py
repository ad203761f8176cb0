"""Airflow task entry points of advisor_delay_notices. They read the task context (the `as_of` Param, the run's
date) and call the plain functions of outbox.py / status_page.py with an engine, a business date and `now`."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from include.core.dagkit import fail_fast_on_bad_input
from include.core.dates import TODAY, business_date
from include.core.db import get_engine

log = logging.getLogger(__name__)


def parse_as_of(value: object) -> dt.datetime | None:
    """The `as_of` Param: empty (production: the clock) or an ISO 8601 time with its offset."""
    text = str(value or "").strip()
    if not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"as_of {text!r} is not an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"as_of {text!r} has no UTC offset (write e.g. 2026-12-01T06:16:00+05:30)")
    return parsed


def when(context: Mapping[str, Any]) -> tuple[dt.date, dt.datetime]:
    """(business date, now): `as_of` and its IST date when given, else the clock and the run's date."""
    with fail_fast_on_bad_input():
        as_of = parse_as_of((context.get("params") or {}).get("as_of"))
    if as_of is not None:
        from include.core.config import IST

        return as_of.astimezone(IST).date(), as_of
    return business_date(context, TODAY), dt.datetime.now(dt.UTC)


def notify_delayed_advisors(context: Mapping[str, Any]) -> dict:
    """advisor_delay_notices.notify_delayed_advisors: create the due notices, then send (and retry) their emails."""
    from include.advisor_notices.email import SmtpMailer
    from include.advisor_notices.outbox import notify, send_emails
    from include.core.alerting import Alert, RunRef, Severity, post_once

    day, now = when(context)
    engine = get_engine()
    notified = notify(engine, day, now)
    emails = send_emails(engine, day, now, set(notified.affected_advisor_ids), SmtpMailer)
    summary = {**notified.as_dict(), "emails": emails.as_dict()}
    log.info("advisor delay notices %s: late %s, %d in-app notices, %d emails queued, %d advisors without email "
             "(in-app only), %d invalid addresses, %d not contactable; emails sent %d, failed %d",
             day, notified.late_segments or "none", notified.in_app_created, notified.emails_queued,
             notified.without_email, len(notified.invalid_email), notified.excluded_not_contactable, emails.sent,
             emails.failed)
    if emails.gave_up or notified.invalid_email:
        # Once per date: the rows keep the details, and the P2 is not repeated every 5 minutes.
        alert = Alert(Severity.P2, "Advisor delay emails not delivered",
                      {"business date": day.isoformat(),
                       "gave up (last attempt failed)": "; ".join(emails.gave_up[:5]) or "none",
                       "invalid addresses (in-app only)": "; ".join(notified.invalid_email[:5]) or "none",
                       "fix": "correct the advisors' contact_email / the advisor_email SMTP connection"},
                      RunRef.from_context(context))
        post_once(engine, day, "advisor_notice_emails_undelivered", alert)
    return summary


def publish_status_page(context: Mapping[str, Any]) -> dict:
    """advisor_delay_notices.publish_status_page: write status.json/html and advisor_status.json/html."""
    from include.advisor_notices.status_page import publish

    day, now = when(context)
    return publish(get_engine(), day, now)
