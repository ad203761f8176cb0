"""Settling sends whose outcome is unknown, from what Meta gives in production: API answers and webhooks.

A request that timed out or was reset after its bytes left, or a row a killed sender left 'sending', may
or may not have been accepted by WhatsApp. Resending it blindly risks a duplicate; never resending it
risks a loss. Nothing sandbox-only is consulted: the rule (`decide`) reads stored status webhooks only.

* A status webhook that echoes the row's idempotency key (`biz_opaque_callback_data`) for this attempt
  means it was accepted: record that wamid.
* No such webhook, but the receiver's *webhook watermark* (the latest acceptance time among messages
  whose statuses it has stored) is at least `margin_s` past the moment this attempt started: Meta sends a
  status for every message it accepts, and it has sent them for messages accepted after this one, so
  this one was never accepted. It goes back to the queue.
* Otherwise keep it 'unknown'. Webhooks may be late or the receiver down; resending now could send twice.
  The sender waits a bounded time, then reports the rows and pages; post-delivery reconciliation runs
  the same rule later (`settle_date`), and what stays unknown is reported for an operator to decide.

One resolver serves the advisors' deliveries and the nightly canary: `settle` reads and writes through a
`Ledger` (the table's webhook evidence, watermark and verdict writes), which each work queue implements for its
own table (include/delivery/fanout/work_queue.py); `DeliveriesLedger` is the advisors' `deliveries`.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.engine import Engine

from include.core import config
from include.core.db import query

log = logging.getLogger(__name__)

ACCEPTED, REQUEUE, KEEP = "accepted", "queued", "unknown"


@dataclass(frozen=True)
class Verdict:
    action: str            # ACCEPTED, REQUEUE or KEEP
    wamid: str | None
    reason: str


def decide(sending_at: dt.datetime | None, evidence_wamid: str | None, watermark: dt.datetime | None,
           now: dt.datetime, margin_s: float | None = None,
           min_age_s: float | None = None) -> Verdict:
    """What to do with one row whose send outcome is unknown (a pure function; see the module doc)."""
    margin_s = config.WEBHOOK_WATERMARK_MARGIN_S if margin_s is None else margin_s
    min_age_s = config.UNKNOWN_RESOLVE_AFTER_S if min_age_s is None else min_age_s
    if evidence_wamid:
        return Verdict(ACCEPTED, evidence_wamid, "status webhook of this attempt")
    if sending_at is None:
        # Never marked as sent: no request can have left for it.
        return Verdict(REQUEUE, None, "no send attempt recorded")
    age = (now - sending_at).total_seconds()
    if age < min_age_s:
        return Verdict(KEEP, None, f"too young to judge ({age:.0f} s < {min_age_s:.0f} s)")
    if watermark is None:
        return Verdict(KEEP, None, "no status webhook stored yet (webhooks late or receiver down)")
    lead = (watermark - sending_at).total_seconds()
    if lead >= margin_s:
        return Verdict(REQUEUE, None, f"statuses stored for messages accepted {lead:.0f} s later, none for this one")
    return Verdict(KEEP, None, f"webhook watermark only {lead:.0f} s past this send (needs {margin_s:.0f} s)")


@dataclass
class Settled:
    accepted: int = 0
    requeued: int = 0
    unknown: int = 0
    unknown_keys: list[str] = field(default_factory=list)

    def add(self, other: Settled) -> None:
        self.accepted += other.accepted
        self.requeued += other.requeued
        self.unknown += other.unknown
        self.unknown_keys.extend(other.unknown_keys)


class Ledger(Protocol):
    """One work table as the resolver sees it: the evidence it judges by and where its verdicts go."""

    def webhook_evidence(self, keys: list[str]) -> dict[str, str]:
        """Idempotency key -> wamid, from the stored status webhooks that echo these keys."""
        ...

    def webhook_watermark(self) -> dt.datetime | None:
        ...

    def resolve_unknown(self, updates: list[dict]) -> None:
        """Write verdicts (delivery_id, status, wamid) in one transaction."""
        ...


class DeliveriesLedger:
    """The advisors' `deliveries` table. A work table's statements live in its own folder of sql/queries/
    (`SQL_FOLDER`); the canary's queue points the same methods at `canary/`."""

    SQL_FOLDER = "fanout"

    def __init__(self, engine: Engine):
        self.engine = engine

    def _sql(self, name: str):
        return query(f"{self.SQL_FOLDER}/{name}")

    def webhook_evidence(self, keys: list[str]) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {r.biz_opaque: r.wamid for r in conn.execute(self._sql("webhook_evidence"), {"keys": keys})}

    def webhook_watermark(self) -> dt.datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(self._sql("webhook_watermark")).scalar()

    def resolve_unknown(self, updates: list[dict]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self._sql("resolve_unknown"), updates)


def settle(ledger: Ledger | Engine, rows: Iterable, now: dt.datetime | None = None,
           margin_s: float | None = None,
           min_age_s: float | None = None) -> Settled:
    """Apply `decide` to rows (delivery_id, idempotency_key, status, sending_at) and write the verdicts in
    one transaction. A stale 'sending' row that stays undecided is marked 'unknown', so it is reported.
    An engine stands for the advisors' deliveries (post-delivery and operators settle those)."""
    margin_s = config.WEBHOOK_WATERMARK_MARGIN_S if margin_s is None else margin_s
    min_age_s = config.UNKNOWN_RESOLVE_AFTER_S if min_age_s is None else min_age_s
    if isinstance(ledger, Engine):
        ledger = DeliveriesLedger(ledger)
    rows = list(rows)
    out = Settled()
    if not rows:
        return out
    evidence = ledger.webhook_evidence([r.idempotency_key for r in rows])
    watermark = ledger.webhook_watermark()
    now = now or dt.datetime.now(dt.UTC)
    updates = []
    for r in rows:
        verdict = decide(r.sending_at, evidence.get(r.idempotency_key), watermark, now, margin_s, min_age_s)
        if verdict.action == ACCEPTED:
            out.accepted += 1
        elif verdict.action == REQUEUE:
            out.requeued += 1
        else:
            out.unknown += 1
            out.unknown_keys.append(r.idempotency_key)
            if r.status == "unknown":
                continue  # nothing to write
        updates.append({"delivery_id": r.delivery_id, "status": verdict.action, "wamid": verdict.wamid})
    if updates:
        ledger.resolve_unknown(updates)
    if out.requeued or out.accepted:
        log.info("unknown outcomes settled: %d accepted (webhook), %d requeued (watermark %s), %d still unknown",
                 out.accepted, out.requeued, watermark, out.unknown)
    return out


def settle_date(engine: Engine, business_date: dt.date, stale_s: float | None = None) -> Settled:
    """Post-delivery: settle the date's rows left 'unknown', or 'sending' by senders that are gone (no live
    lease on the date and older than `stale_s`), with the same rule the sender uses."""
    stale_s = config.SENDER_STALE_SENDING_S if stale_s is None else stale_s
    with engine.connect() as conn:
        rows = conn.execute(query("fanout/unsettled_for_date"), {
            "business_date": business_date, "stale_s": stale_s}).fetchall()
    return settle(DeliveriesLedger(engine), rows)
