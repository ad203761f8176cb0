"""Pure rules of the advisor delay notices (issue 17 §6): when a segment is late, who is affected, when a notice is
due, and the ETA it carries. No database, no Airflow: every function takes the figures and an explicit `now`.

* **Late segment**: more than `late_after` has passed since the business date's 06:00 slot (IST) and some of the
  segment's planned rows are still *unsent* (no delivery row yet, or queued / sending / unknown). Failed and
  skipped rows are final outcomes, not a delay: failures have their own path (ops_retry_failed_deliveries puts them
  back in the queue, and then they count as unsent again); skipped rows are DNC / opted-out advisors.
* **Affected advisor**: planned in a late segment, message still unsent, and contactable now (active, opted in,
  not on the do-not-contact list). A DNC or opted-out advisor never gets a notice.
* **Cadence**: notice 1 as soon as the advisor is affected; notice n+1 when `every` has passed since notice n
  (less a small grace, so a run a few seconds early does not push the notice to the next 5-minute run). Nothing once
  the message is accepted or the segment has recovered.
* **ETA**: with sending paused (kill switch) there is none: "next update by HH:MM". With no message accepted in
  the rate window (stalled, not started) neither. Otherwise `now + remaining / rate`, rounded up to the minute,
  where `remaining` is the date's unsent rows (all segments share the sending numbers) and `rate` the accepted
  messages per second over the window. The notice says which of the three it is (`basis`).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from include.core.config import IST, SCHEDULE_DELIVERY_FANOUT

UNSENT_STATUSES = ("not_queued", "queued", "sending", "unknown")
ETA_BASES = ("send_rate", "paused", "stalled")


def delivery_slot(business_date: dt.date, cron: str = SCHEDULE_DELIVERY_FANOUT) -> dt.datetime:
    """The date's send slot in IST (06:00), from the fan-out's own schedule ("M H * * *")."""
    minute, hour = cron.split()[:2]
    if not (minute.isdigit() and hour.isdigit()):
        raise ValueError(f"the fan-out schedule {cron!r} is not a fixed daily time; cannot place its slot")
    return dt.datetime.combine(business_date, dt.time(int(hour), int(minute)), tzinfo=IST)


def _aware(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got naive {now!r}")
    return now


@dataclass(frozen=True)
class SegmentProgress:
    segment: str
    planned: int
    accepted: int
    unsent: int
    failed: int = 0
    skipped: int = 0

    def __post_init__(self):
        for name in ("planned", "accepted", "unsent", "failed", "skipped"):
            if getattr(self, name) < 0:
                raise ValueError(f"segment {self.segment!r}: {name} is negative ({getattr(self, name)})")
        if self.accepted + self.unsent + self.failed + self.skipped > self.planned:
            raise ValueError(f"segment {self.segment!r}: accepted+unsent+failed+skipped exceed planned "
                             f"({self.accepted}+{self.unsent}+{self.failed}+{self.skipped} > {self.planned})")


def minutes_late(now: dt.datetime, business_date: dt.date) -> float:
    """Minutes since the date's 06:00 slot (negative before it)."""
    return (_aware(now) - delivery_slot(business_date)).total_seconds() / 60


def is_late(segment: SegmentProgress, now: dt.datetime, business_date: dt.date, late_after_min: int) -> bool:
    """More than `late_after_min` past the slot and rows still unsent."""
    return segment.unsent > 0 and minutes_late(now, business_date) > late_after_min


def late_segments(progress: Iterable[SegmentProgress], now: dt.datetime, business_date: dt.date,
                  late_after_min: int) -> list[SegmentProgress]:
    return [s for s in progress if is_late(s, now, business_date, late_after_min)]


@dataclass(frozen=True)
class Eta:
    basis: str                       # send_rate | paused | stalled
    eta_at: dt.datetime | None       # None unless basis == send_rate
    next_update_at: dt.datetime

    def phrase(self) -> str:
        """How a notice says it, in IST."""
        nxt = self.next_update_at.astimezone(IST).strftime("%H:%M")
        if self.basis == "send_rate":
            return (f"Expected by {self.eta_at.astimezone(IST).strftime('%H:%M')} IST "
                    f"(at the current send rate). Next update by {nxt} IST if it has not arrived.")
        if self.basis == "paused":
            return f"Sending is paused while our team checks an issue; no estimate yet. Next update by {nxt} IST."
        return f"Sending has not resumed yet; no estimate yet. Next update by {nxt} IST."


def estimate_eta(now: dt.datetime, remaining: int, accepted_in_window: int, window_s: int, paused: bool,
                 every_min: int) -> Eta:
    """The ETA of the remaining messages (see the module doc)."""
    _aware(now)
    if remaining < 0 or accepted_in_window < 0:
        raise ValueError(f"remaining ({remaining}) and accepted_in_window ({accepted_in_window}) must be >= 0")
    if window_s <= 0:
        raise ValueError(f"the rate window must be positive, got {window_s} s")
    next_update = now + dt.timedelta(minutes=every_min)
    if paused:
        return Eta("paused", None, next_update)
    rate = accepted_in_window / window_s
    if rate <= 0:
        return Eta("stalled", None, next_update)
    seconds = remaining / rate
    eta = now + dt.timedelta(seconds=seconds)
    eta = eta.replace(second=0, microsecond=0) + (dt.timedelta(minutes=1) if (eta.second or eta.microsecond) else
                                                  dt.timedelta(0))
    return Eta("send_rate", eta, next_update)


@dataclass(frozen=True)
class NoticeDue:
    due: bool
    seq: int          # the number the notice gets (last + 1) when due
    reason: str


def notice_due(now: dt.datetime, last_seq: int | None, last_notice_at: dt.datetime | None, every_min: int,
               grace_s: int) -> NoticeDue:
    """Whether an affected advisor gets a notice now, and its number of the day."""
    _aware(now)
    if last_seq is None or last_notice_at is None:
        return NoticeDue(True, 1, "first notice")
    elapsed = (now - last_notice_at).total_seconds()
    needed = every_min * 60 - grace_s
    if elapsed >= needed:
        return NoticeDue(True, last_seq + 1, f"{elapsed / 60:.0f} min since notice {last_seq}")
    return NoticeDue(False, last_seq, f"notice {last_seq} went out {elapsed / 60:.0f} min ago (every {every_min} min)")


@dataclass(frozen=True)
class Candidate:
    advisor_id: int
    segment: str
    name: str
    email: str | None
    contactable: bool
    last_seq: int | None = None
    last_notice_at: dt.datetime | None = None


@dataclass(frozen=True)
class Selection:
    due: list[tuple[Candidate, int]]   # (advisor, seq of the new notice)
    not_due: list[Candidate]           # affected, but their last notice is recent
    excluded: list[Candidate]          # DNC / opted out / inactive: never notified

    @property
    def affected_ids(self) -> set[int]:
        return {c.advisor_id for c, _ in self.due} | {c.advisor_id for c in self.not_due}


def select(candidates: Sequence[Candidate], now: dt.datetime, every_min: int, grace_s: int) -> Selection:
    """Split the unsent advisors of the late segments into due, not yet due, and excluded (not contactable)."""
    due, not_due, excluded = [], [], []
    for c in candidates:
        if not c.contactable:
            excluded.append(c)
            continue
        d = notice_due(now, c.last_seq, c.last_notice_at, every_min, grace_s)
        (due.append((c, d.seq)) if d.due else not_due.append(c))
    return Selection(due, not_due, excluded)


def valid_email(address: str | None) -> bool:
    """A usable address: one @, something on both sides, no whitespace (the table's CHECK, checked first so one bad
    address never aborts the batch)."""
    if not address:
        return False
    local, sep, domain = address.strip().partition("@")
    return bool(sep and local and domain and "@" not in domain and not any(ch.isspace() for ch in address.strip())
                and "." in domain)


def message_id(business_date: dt.date, advisor_id: int, seq: int, domain: str) -> str:
    """A deterministic Message-ID: a resend after a crash between SMTP and the database carries the same id."""
    return f"<delay-notice-{business_date:%Y%m%d}-{advisor_id}-{seq}@{domain}>"

