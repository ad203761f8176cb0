"""The fan-out's work queue: which rows a unit sends next, and where what happened to them is written.

One interface (`WorkQueue`), two tables. `DeliveryQueue` is the advisors' `deliveries` (sql/queries/fanout/*);
`CanaryQueue` is the nightly canary's `canary_sends` (sql/queries/canary/*, scoped by its canary run, with no
attempts log), so the canary runs the same sender over its own rows without touching the advisors' SLA or
idempotency keys. A queue never decides what to send; the sender never names a query.

Claims are `FOR UPDATE SKIP LOCKED`, so two runs can never claim the same row, and resume after a keyset
cursor per segment group. Threads: every method but `advance` and `rewind` blocks on PostgreSQL and is called
through `asyncio.to_thread`; the cursor is advanced on the event-loop thread and read by the claim in a worker
thread, so it sits behind its own lock.
"""
from __future__ import annotations

import threading
import time
from typing import ClassVar, Protocol

import sqlalchemy.exc
from sqlalchemy.engine import Engine

from include.core.db import query
from include.delivery.fanout.units import Unit
from include.delivery.unknown_outcomes import DeliveriesLedger, Ledger

# PostgreSQL going away mid-run (restart, failover): senders wait and retry instead of dying.
TRANSIENT_DB_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)

OUTCOME_COLUMNS = ("delivery_id", "status", "wamid", "error_code", "error_title", "skip_reason", "latency_ms",
                   "next_attempt_at", "refund_attempt", "at")
ATTEMPT_COLUMNS = ("business_date", "advisor_id", "attempt_no", "phone_number_id", "outcome", "error_code",
                   "latency_ms")


class WorkQueue(Ledger, Protocol):
    """One unit's rows in one work table. Also the `Ledger` unknown outcomes are settled through."""

    unit: Unit

    def claim(self, limit: int, elapsed_ms: int, phone_number_id: str) -> list:
        """Mark up to `limit` due rows 'sending' (attempt counted, number recorded) and return them, with the
        advisor's DNC/opt-out state read at claim time."""
        ...

    def advance(self, rows) -> None:
        """Move the keyset cursor past rows just claimed."""
        ...

    def rewind(self) -> None:
        """Start the cursor over, at most every few seconds."""
        ...

    def write(self, outcomes: list[dict], attempts: list[dict], opt_outs: list[str]) -> None:
        """One transaction: outcomes (OUTCOME_COLUMNS), attempts (ATTEMPT_COLUMNS) and do-not-contact entries."""
        ...

    def remaining(self):
        """(queued, unresolved, next_retry_at) of the unit's rows."""
        ...

    def unit_templates(self) -> list:
        """(template_name, template_language) the unit's rows are addressed with."""
        ...

    def retarget_template(self, old: str, new: str) -> int:
        """Readdress the unit's unsent rows of `old` to `new`; returns how many."""
        ...

    def stale_unresolved(self, stale_s: float) -> list:
        """Rows 'unknown', or 'sending' for longer than `stale_s`: the ones `unknown_outcomes.settle` judges."""
        ...


class KeysetCursor:
    """Where each segment group's claims resume: the last (jitter_ms, advisor_id) claimed, so a claim never
    rescans the rows it has passed. A row skipped while another transaction held its lock, and never claimed
    since, is behind the cursor; the periodic rewind brings it back."""

    REWIND_S = 5.0

    def __init__(self, segments: tuple[str, ...]):
        self._segments = list(segments)
        self._after: dict[str, tuple[int, int]] = {}
        self._last_rewind = time.monotonic()
        self._lock = threading.Lock()

    def params(self) -> dict:
        with self._lock:
            cursors = [self._after.get(seg, (-1, -1)) for seg in self._segments]
        return {"after_jitter": [c[0] for c in cursors], "after_advisor": [c[1] for c in cursors]}

    def advance(self, rows) -> None:
        with self._lock:
            for r in rows:
                seg, jitter = getattr(r, "segment", None), getattr(r, "jitter_ms", None)
                if seg is not None and jitter is not None:
                    self._after[seg] = max(self._after.get(seg, (-1, -1)), (jitter, r.advisor_id))

    def rewind(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._after and now - self._last_rewind >= self.REWIND_S:
                self._after.clear()
                self._last_rewind = now


def _columns(rows: list[dict], columns: tuple[str, ...]) -> dict[str, list]:
    """A batch as one array per column: the SQL unnests them, one statement for the whole batch."""
    return {c: [r[c] for r in rows] for c in columns}


class TableQueue(DeliveriesLedger):
    """A `WorkQueue` over one work table, through that table's statements in sql/queries/<SQL_FOLDER>/: both
    tables answer the same named statements, so one implementation serves both."""

    SQL_FOLDER: ClassVar[str]
    RECORDS_ATTEMPTS: ClassVar[bool]

    def __init__(self, engine: Engine, unit: Unit):
        super().__init__(engine)
        self.unit = unit
        self.cursor = KeysetCursor(unit.segments)

    def _scope(self) -> dict:
        return {"business_date": self.unit.business_date, "shard": self.unit.shard,
                "segments": list(self.unit.segments), "segment": self.unit.segment}

    def claim(self, limit: int, elapsed_ms: int, phone_number_id: str) -> list:
        with self.engine.begin() as conn:
            return conn.execute(self._sql("claim"), self._scope() | self.cursor.params() | {
                "elapsed_ms": elapsed_ms, "limit": limit, "phone_number_id": phone_number_id}).fetchall()

    def advance(self, rows) -> None:
        self.cursor.advance(rows)

    def rewind(self) -> None:
        self.cursor.rewind()

    def write(self, outcomes: list[dict], attempts: list[dict], opt_outs: list[str]) -> None:
        # A 131050's DNC entry is written in the same transaction as the failure it comes from; the one
        # do-not-contact list serves both tables.
        attempts = attempts if self.RECORDS_ATTEMPTS else []
        if not outcomes and not attempts and not opt_outs:
            return
        with self.engine.begin() as conn:
            if outcomes:
                conn.execute(self._sql("record_outcome"), _columns(outcomes, OUTCOME_COLUMNS))
            if attempts:
                conn.execute(self._sql("record_attempt"), _columns(attempts, ATTEMPT_COLUMNS))
            for phone in opt_outs:
                conn.execute(query("fanout/add_opt_out"), {"phone_e164": phone})

    def remaining(self):
        with self.engine.connect() as conn:
            return conn.execute(self._sql("remaining"), self._scope()).one()

    def unit_templates(self) -> list:
        with self.engine.connect() as conn:
            return conn.execute(self._sql("unit_templates"), self._scope()).fetchall()

    def retarget_template(self, old: str, new: str) -> int:
        with self.engine.begin() as conn:
            return conn.execute(self._sql("retarget_template"), self._scope() | {
                "old_template": old, "new_template": new}).rowcount

    def stale_unresolved(self, stale_s: float) -> list:
        with self.engine.connect() as conn:
            return conn.execute(self._sql("stale_unresolved"), self._scope() | {"stale_s": stale_s}).fetchall()


class DeliveryQueue(TableQueue):
    """The advisors' `deliveries` rows of one unit (business date, shard, segment groups)."""

    SQL_FOLDER = "fanout"
    RECORDS_ATTEMPTS = True


class CanaryQueue(TableQueue):
    """One canary run's `canary_sends` rows on one shard. There is no attempts log for the canary; a 131050
    still lands in the shared do-not-contact list, as it would from the advisors' fan-out."""

    SQL_FOLDER = "canary"
    RECORDS_ATTEMPTS = False

    def __init__(self, engine: Engine, unit: Unit, canary_run_id: int):
        super().__init__(engine, unit)
        self.canary_run_id = canary_run_id

    def _scope(self) -> dict:
        return super()._scope() | {"canary_run_id": self.canary_run_id}
