"""Advisor delay notices against the app database: read the morning's situation, write the in-app outbox and the
email rows, then send the emails (include/advisor_notices/email.py does the SMTP part).

Plain functions over an engine, a business date and an explicit `now` (timezone-aware), no Airflow.

**At most one notice per advisor and cadence step.** `notify` runs in one transaction that first takes a per-date
advisory lock (overlapping runs queue), then inserts the due notices with `ON CONFLICT DO NOTHING` on
`(business_date, advisor_id, seq)` and gets back only the rows it created; the email rows of exactly those notices
are inserted in the same transaction. A retried task therefore never creates a second notice for the same step.

**Emails after commit.** SMTP is not transactional, so the email rows commit first (status `pending`) and
`send_emails` sends them afterwards, one row-locked transaction per email (`FOR UPDATE SKIP LOCKED`: an overlapping
run never sends the same row). A failure is recorded on the row (`failed`, attempts, last_error) and retried by the
next run (every 5 minutes) until FA_ADVISOR_NOTICE_EMAIL_MAX_ATTEMPTS. A row whose advisor has a newer notice is
`superseded`, one whose advisor is no longer affected is `cancelled`: a late email never says something stale.
The one gap SMTP leaves: a crash after the relay accepted the message and before the row commits `sent` sends that
email again on the retry; it carries the same deterministic Message-ID, so mail clients and the relay's logs show it
as one message.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.engine import Connection, Engine

from include.core import config
from include.core.db import query
from include.advisor_notices import delays

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
EMAIL_SUBJECT = "Today's content pack is delayed"
IN_APP_TITLE = "Your content pack is delayed"


def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, trim_blocks=True,
                       lstrip_blocks=True, autoescape=lambda name: bool(name) and ".html" in name)


@dataclass(frozen=True)
class Situation:
    """The morning as the notices and the status page see it, read in one transaction."""

    business_date: dt.date
    now: dt.datetime
    segments: list[delays.SegmentProgress]
    late: list[delays.SegmentProgress]
    segment_names: dict[str, str]
    sending_paused: bool
    accepted_in_window: int
    eta: delays.Eta
    incidents: list[dict[str, Any]]

    @property
    def remaining(self) -> int:
        return sum(s.unsent for s in self.segments)

    @property
    def incident_id(self) -> int | None:
        """The incident a notice refers to: the worst open one of this date (or undated), if any."""
        return self.incidents[0]["incident_id"] if self.incidents else None


_SEVERITY_RANK = {"P0": 0, "P1": 1, "P2": 2}


def situation(conn: Connection, business_date: dt.date, now: dt.datetime) -> Situation:
    every = config.ADVISOR_NOTICE_EVERY_MIN
    segments = [delays.SegmentProgress(r.segment, r.planned, r.accepted, r.unsent, r.failed, r.skipped)
                for r in conn.execute(query("notices/segment_progress"), {"business_date": business_date})]
    late = delays.late_segments(segments, now, business_date, config.ADVISOR_NOTICE_LATE_AFTER_MIN)
    names = {r.code: r.name for r in conn.execute(query("notices/segment_names"))}
    paused = bool(conn.execute(query("ops/sending_state")).one().paused)
    window_s = config.ADVISOR_NOTICE_RATE_WINDOW_S
    accepted = conn.execute(query("notices/send_rate"), {"business_date": business_date, "now": now,
                                                          "window_s": window_s}).scalar_one()
    eta = delays.estimate_eta(now, sum(s.unsent for s in segments), accepted, window_s, paused, every)
    incidents = [dict(r._mapping) for r in conn.execute(query("incidents/open"))
                 if r.business_date in (None, business_date)]
    incidents.sort(key=lambda i: (_SEVERITY_RANK.get(i["severity"], 9), i["opened_at"]))
    return Situation(business_date, now, segments, late, names, paused, accepted, eta, incidents)


@dataclass
class NotifyResult:
    business_date: str
    late_segments: list[str]
    eta_basis: str
    eta_at: str | None
    in_app_created: int = 0
    emails_queued: int = 0
    without_email: int = 0               # in-app only: no address on file
    invalid_email: list[str] = field(default_factory=list)  # "advisor 12: 'x@'": in-app only, named
    not_due: int = 0                     # affected, last notice too recent
    already_notified: int = 0            # due, but an overlapping/retried run created that step first
    excluded_not_contactable: int = 0    # DNC / opted out / inactive: never notified
    affected_advisor_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["affected_advisors"] = len(out.pop("affected_advisor_ids"))
        return out


def _render_bodies(env: Environment, sit: Situation, due: Sequence[tuple[delays.Candidate, int]]):
    """(in-app text, email html) per due advisor."""
    text_t, html_t = env.get_template("notice_in_app.txt.j2"), env.get_template("notice_email.html.j2")
    phrase = sit.eta.phrase()
    sent_at = sit.now.astimezone(config.IST).strftime("%Y-%m-%d %H:%M")
    out = []
    for cand, seq in due:
        common = dict(segment_name=sit.segment_names.get(cand.segment, cand.segment),
                      business_date=sit.business_date.isoformat(), eta_phrase=phrase, incident_id=sit.incident_id,
                      seq=seq)
        out.append((text_t.render(**common).strip(),
                    html_t.render(**common, name=cand.name, subject=EMAIL_SUBJECT,
                                  status_url=config.ADVISOR_STATUS_PAGE_URL, sent_at=sent_at)))
    return out


def notify(engine: Engine, business_date: dt.date, now: dt.datetime) -> NotifyResult:
    """Create the due in-app notices and their email rows (one transaction; see the module doc)."""
    env = environment()
    with engine.begin() as conn:
        conn.execute(query("notices/lock_date"), {"business_date": business_date})
        sit = situation(conn, business_date, now)
        result = NotifyResult(business_date.isoformat(), [s.segment for s in sit.late], sit.eta.basis,
                              sit.eta.eta_at.isoformat() if sit.eta.eta_at else None)
        if not sit.late:
            return result
        candidates = [delays.Candidate(r.advisor_id, r.segment, r.name, r.contact_email, r.contactable, r.last_seq,
                                       r.last_notice_at)
                      for r in conn.execute(query("notices/affected_advisors"),
                                            {"business_date": business_date,
                                             "segments": [s.segment for s in sit.late]})]
        sel = delays.select(candidates, now, config.ADVISOR_NOTICE_EVERY_MIN, config.ADVISOR_NOTICE_GRACE_S)
        result.not_due = len(sel.not_due)
        result.excluded_not_contactable = len(sel.excluded)
        result.affected_advisor_ids = sorted(sel.affected_ids)
        if not sel.due:
            return result
        bodies = _render_bodies(env, sit, sel.due)
        created = conn.execute(query("notices/insert_in_app"), {
            "business_date": business_date, "incident_id": sit.incident_id, "eta_at": sit.eta.eta_at,
            "eta_basis": sit.eta.basis, "next_update_at": sit.eta.next_update_at, "title": IN_APP_TITLE,
            "now": now, "advisor_ids": [c.advisor_id for c, _ in sel.due], "segments": [c.segment for c, _ in sel.due],
            "seqs": [seq for _, seq in sel.due], "bodies": [text for text, _ in bodies]}).fetchall()
        result.in_app_created = len(created)
        result.already_notified = len(sel.due) - len(created)
        by_key = {(c.advisor_id, seq): (c, html) for (c, seq), (_, html) in zip(sel.due, bodies, strict=True)}
        emails = {"notice_ids": [], "to_addresses": [], "bodies": [], "message_ids": []}
        for row in created:
            cand, html = by_key[(row.advisor_id, row.seq)]
            if not cand.email:
                result.without_email += 1
                continue
            if not delays.valid_email(cand.email):
                result.invalid_email.append(f"advisor {cand.advisor_id}: {cand.email!r}")
                log.warning("advisor %s has an unusable contact_email %r: in-app notice only", cand.advisor_id,
                            cand.email)
                continue
            emails["notice_ids"].append(row.notice_id)
            emails["to_addresses"].append(cand.email.strip())
            emails["bodies"].append(html)
            emails["message_ids"].append(delays.message_id(business_date, cand.advisor_id, row.seq,
                                                           config.ADVISOR_NOTICE_MESSAGE_ID_DOMAIN))
        if emails["notice_ids"]:
            conn.execute(query("notices/insert_emails"), {**emails, "subject": EMAIL_SUBJECT})
        result.emails_queued = len(emails["notice_ids"])
    return result


class Mailer(Protocol):
    def send(self, to: str, subject: str, html: str, message_id: str) -> None: ...


@dataclass
class EmailResult:
    sent: int = 0
    failed: int = 0                 # this run's failed attempts (retried next run while attempts remain)
    gave_up: list[str] = field(default_factory=list)  # "email 7 to a@b: error" that used their last attempt
    superseded: int = 0
    cancelled: int = 0
    skipped_locked: int = 0         # an overlapping run is sending it

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _mark(conn: Connection, email_id: int, status: str, now: dt.datetime, attempted: int = 0,
          error: str | None = None) -> None:
    conn.execute(query("notices/mark_email"), {"email_id": email_id, "status": status, "now": now,
                                               "attempted": attempted, "error": error})


def send_emails(engine: Engine, business_date: dt.date, now: dt.datetime, affected_advisor_ids: set[int] | None,
                mailer_factory: Callable[[], Any]) -> EmailResult:
    """Send the date's pending emails (and retry failed ones). `affected_advisor_ids`: who is still affected now
    (None: nobody); `mailer_factory()` is a context manager giving a `Mailer` (email.SmtpMailer)."""
    result = EmailResult()
    affected = affected_advisor_ids or set()
    max_attempts = config.ADVISOR_NOTICE_EMAIL_MAX_ATTEMPTS
    with engine.connect() as conn:
        todo = conn.execute(query("notices/emails_to_send"),
                            {"business_date": business_date, "max_attempts": max_attempts}).fetchall()
    to_send = []
    for row in todo:
        verdict = "superseded" if row.superseded else ("cancelled" if row.advisor_id not in affected else None)
        if verdict is None:
            to_send.append(row)
            continue
        with engine.begin() as conn:
            if conn.execute(query("notices/claim_email"), {"email_id": row.email_id}).first() is None:
                result.skipped_locked += 1
                continue
            _mark(conn, row.email_id, verdict, now)
        setattr(result, verdict, getattr(result, verdict) + 1)
    if not to_send:
        return result
    try:
        mailer_cm = mailer_factory()
        mailer = mailer_cm.__enter__()
    except Exception as exc:  # noqa: BLE001 - the relay is down: every row records it and is retried
        error = f"cannot reach the SMTP relay: {type(exc).__name__}: {exc}"[:500]
        for row in to_send:
            _record_failure(engine, row, now, error, max_attempts, result)
        return result
    try:
        for row in to_send:
            with engine.begin() as conn:
                if conn.execute(query("notices/claim_email"), {"email_id": row.email_id}).first() is None:
                    result.skipped_locked += 1
                    continue
                try:
                    mailer.send(row.to_address, row.subject, row.body, row.message_id)
                except Exception as exc:  # noqa: BLE001 - recorded on the row, retried next run
                    error = f"{type(exc).__name__}: {exc}"[:500]
                    _mark(conn, row.email_id, "failed", now, attempted=1, error=error)
                    _count_failure(row, error, max_attempts, result)
                    continue
                _mark(conn, row.email_id, "sent", now, attempted=1)
                result.sent += 1
    finally:
        mailer_cm.__exit__(None, None, None)
    return result


def _record_failure(engine: Engine, row, now: dt.datetime, error: str, max_attempts: int,
                    result: EmailResult) -> None:
    with engine.begin() as conn:
        if conn.execute(query("notices/claim_email"), {"email_id": row.email_id}).first() is None:
            result.skipped_locked += 1
            return
        _mark(conn, row.email_id, "failed", now, attempted=1, error=error)
    _count_failure(row, error, max_attempts, result)


def _count_failure(row, error: str, max_attempts: int, result: EmailResult) -> None:
    result.failed += 1
    if row.attempts + 1 >= max_attempts:
        result.gave_up.append(f"email {row.email_id} to {row.to_address}: {error}")
