"""The fan-out sender: one unit per (shard, segment), many units per run, none per advisor.

A unit streams its due rows from PostgreSQL in claimed batches (`FOR UPDATE SKIP LOCKED`, so two
runs can never claim the same row), sends them concurrently through the async WhatsApp client
inside its number's adaptive token bucket, and writes outcomes back in batches. The idempotency
key (business date, advisor) is the row's unique key and travels as `biz_opaque_callback_data`.

Crash safety: a row is 'sending' only while a request may be in flight. A row whose outcome is
unknown (timeout or reset after the bytes left, or a sender killed mid-batch) is settled only from what
Meta gives, its status webhooks and the webhook watermark (include/delivery/unknown_outcomes.py), and stays
'unknown' (reported, paged) rather than being resent on a guess.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy.exc
from sqlalchemy.engine import Engine

from include.core import config

from include.delivery import numbers, unknown_outcomes

from include.content import templates
from include.core.alerting import Alert, RunRef, Severity, post, post_once
from include.core.db import query
from include.delivery.kill_switch import is_sending_paused
from include.core.phones import mask_phone
from include.delivery.ratelimit import AdaptiveBucket
from include.whatsapp.client import (
    AsyncWhatsAppClient, ErrorClass, WhatsAppClient, WhatsAppError, WhatsAppSettings,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unit:
    """What one mapped sender sends: a shard's rows of one or more segment groups, in send order.

    A standard-throughput number (80 msg/s) is one process's work, so its unit covers all four segment
    groups in turn and keeps the number busy from the first second to the last. A high-throughput number
    is split per segment group so that several processes (cores) feed it."""

    business_date: dt.date
    shard: int
    segments: tuple[str, ...]
    peers: int = 1  # units planned on this shard's number, this one included

    @property
    def segment(self) -> str:
        return "+".join(self.segments)

    @property
    def label(self) -> str:
        return f"shard {self.shard} / {self.segment}"

    def as_dict(self) -> dict:
        return {"business_date": self.business_date.isoformat(), "shard": self.shard,
                "segments": list(self.segments), "segment": self.segment, "peers": self.peers}

    @classmethod
    def from_dict(cls, d: dict) -> Unit:
        segments = d.get("segments") or str(d["segment"]).split("+")
        return cls(dt.date.fromisoformat(d["business_date"]), int(d["shard"]), tuple(str(x) for x in segments),
                   int(d.get("peers") or 1))


@dataclass
class SenderOptions:
    jitter_honoured: bool = True
    claim_batch: int = config.SENDER_CLAIM_BATCH
    max_in_flight: int = config.SENDER_MAX_IN_FLIGHT
    max_attempts: int = config.SENDER_MAX_ATTEMPTS
    control_tick_s: float = config.SENDER_CONTROL_TICK_S
    number_check_s: float = config.SENDER_NUMBER_CHECK_S
    hard_deadline_s: float = config.SENDER_HARD_DEADLINE_S
    stale_sending_s: float = config.SENDER_STALE_SENDING_S
    unknown_resolve_after_s: float = config.UNKNOWN_RESOLVE_AFTER_S
    watermark_margin_s: float = config.WEBHOOK_WATERMARK_MARGIN_S
    settle_wait_s: float = config.UNKNOWN_SETTLE_WAIT_S
    settle_poll_s: float = config.UNKNOWN_SETTLE_POLL_S
    kill_switch_poll_s: float = config.SENDER_KILL_SWITCH_POLL_S
    max_pause_s: float = config.SENDER_MAX_PAUSE_S
    progress_log_s: float = config.SENDER_PROGRESS_LOG_S
    actor: str = "delivery_fanout"


@dataclass
class UnitResult:
    unit: dict
    accepted: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    unknown: int = 0
    reconciled_accepted: int = 0
    reconciled_requeued: int = 0
    throttled: int = 0
    held: int = 0  # accepted but held for quality assessment (template pacing): sent later or dropped by Meta
    numbers_used: list[str] = field(default_factory=list)
    stopped_reason: str | None = None
    paused_seconds: float = 0.0
    elapsed_s: float = 0.0
    remaining_queued: int = 0
    unknown_left: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class AuthFailure(RuntimeError):
    """The access token is invalid or expired (190): stop the run, keep the rows queued."""


class UnitIncomplete(RuntimeError):
    """A unit stopped with rows still queued (deadline, a long pause, no spare or template): it has paged
    and fails, so the run shows it; the rows stay queued for a retry or a backfill."""


# PostgreSQL going away mid-run (restart, failover): senders wait and retry instead of dying.
TRANSIENT_DB_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)


def image_link(render_uri: str | None, pack_key: str) -> str:
    """The public URL WhatsApp fetches the header image from (renders are published under the CDN base)."""
    base = config.RENDER_PUBLIC_BASE_URL.rstrip("/")
    if render_uri:
        return f"{base}/renders/{render_uri.rsplit('/', 1)[-1]}"
    return f"{base}/evergreen/{pack_key}.jpg"


def backoff_s(error: WhatsAppError, attempt: int) -> float:
    """Retry delay: 4^x s for a pair-rate limit (that recipient only), else exponential with jitter."""
    if error.error_class is ErrorClass.PAIR_RATE:
        return float(4 ** max(1, attempt))
    if error.error_class is ErrorClass.THROUGHPUT:
        return random.uniform(0.2, 1.0)
    return min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)


# -- planning the fan-out ------------------------------------------------------------------------
def enqueue(engine: Engine, business_date: dt.date) -> int:
    with engine.begin() as conn:
        queued = conn.execute(query("fanout/enqueue_from_plan"), {"business_date": business_date}).rowcount
    with engine.begin() as conn:
        conn.execute(query("fanout/analyze"))
    return queued


def units_for(engine: Engine, business_date: dt.date, max_units: int = config.MAX_SENDER_TASKS,
              split_mps: int = config.SENDER_SPLIT_MPS) -> list[dict]:
    """Mapped units: one per shard (its segment groups in send order), or one per (shard, segment) for a
    number fast enough to need several processes. Bounded: 4 shards x 4 segments = 16 at most here."""
    with engine.connect() as conn:
        rows = conn.execute(query("fanout/units"), {"business_date": business_date}).fetchall()
    units = []
    for r in rows:
        number = r.display_phone or "no number"
        groups = [(seg,) for seg in r.segments] if (r.throughput_mps or 0) >= split_mps else [tuple(r.segments)]
        for segs in groups:
            unit = Unit(business_date, r.shard, segs, peers=len(groups)).as_dict()
            unit.update(number=number, open_rows=sum(n for seg, n in zip(r.segments, r.open_rows, strict=True)
                                                     if seg in segs),
                        label=f"{number} · shard {r.shard} · {' → '.join(segs)}")  # the mapped task's name in the UI
            units.append(unit)
    # Segment-group order first, so however few executor slots run at once, the first groups go first.
    order = {seg: i for i, seg in enumerate(config.SEGMENTS)}
    units.sort(key=lambda u: (order.get(u["segments"][0], 99), u["shard"]))
    if len(units) > max_units:
        raise ValueError(f"{len(units)} sender units exceed the bound of {max_units}; add fewer shards")
    return units


# -- the sender ------------------------------------------------------------------------------------
class ShardSender:
    """Sends one unit's rows. The work table is named by QUERIES, so the nightly canary runs this same
    code over its own rows (see include/content/canary.py) without touching the advisors' deliveries.

    Three lanes run beside the pacing loop, none waiting on another: the kill switch (its own poll, so a
    pause is honoured within a poll even while Slack or the Graph API hangs), the lease tick (number,
    share of its throughput, buffered outcomes) and the slow control work (quality checks, rotation,
    template switches, in-window monitoring, which may post to Slack)."""

    QUERIES = {"claim": "fanout/claim", "record_outcome": "fanout/record_outcome",
               "record_attempt": "fanout/record_attempt", "remaining": "fanout/remaining",
               "stale_unresolved": "fanout/stale_unresolved", "resolve_unknown": "fanout/resolve_unknown",
               "retarget_template": "fanout/retarget_template", "evidence": "fanout/webhook_evidence",
               "watermark": "fanout/webhook_watermark", "unit_templates": "fanout/unit_templates"}
    MONITORED = True  # in-window failure-rate paging applies to the advisors' fan-out only

    def __init__(self, engine: Engine, settings: WhatsAppSettings, unit: Unit, options: SenderOptions,
                 context: dict | None = None):
        self.engine = engine
        self.settings = settings
        self.unit = unit
        self.opt = options
        self.context = context
        self.result = UnitResult(unit.as_dict())
        self.lease = str(uuid.uuid4())
        self.number: Any = None
        self.bucket: AdaptiveBucket | None = None
        self.started = time.monotonic()
        self.outcomes: list[dict] = []
        self.attempts: list[dict] = []
        self.opt_outs: list[str] = []
        self.stop_reason: str | None = None
        self.paused = False
        self._lock = threading.Lock()  # number, stop reason and control hits: loop thread vs worker threads
        self._last_number_check = 0.0
        self._last_monitor = 0.0
        self._in_flight = 0
        self._policy_hit: WhatsAppError | None = None
        self._cursor: dict[str, tuple[int, int]] = {}  # segment -> last (jitter_ms, advisor_id) claimed
        self._last_rewind = time.monotonic()
        self._template_hit: tuple[str, str, WhatsAppError] | None = None
        self._templates_in_use: set[tuple[str, str]] = set()  # (name, language) this unit sends or will send
        self._tier_seen: str | None = None  # the last messaging tier checked against the plan
        self._held: dict[str, int] = {}  # template -> sends WhatsApp held for quality assessment (pacing)
        self._failed_by_class: Counter[str] = Counter()  # permanent failures by error class (progress log)
        self._open_at_start = 0
        self._last_progress = (time.monotonic(), 0)  # (when, accepted then): the progress log's rate window

    # -- database helpers (sync SQLAlchemy, run in a thread so sends keep flowing) ------------------
    def _q(self, name: str):
        return query(self.QUERIES[name])

    def _scope(self) -> dict:
        """The parameters that select this unit's rows."""
        return {"business_date": self.unit.business_date, "shard": self.unit.shard,
                "segments": list(self.unit.segments), "segment": self.unit.segment}

    async def _db(self, fn, *args):
        return await asyncio.to_thread(fn, *args)

    def _stop(self, reason: str) -> None:
        with self._lock:
            self.stop_reason = self.stop_reason or reason

    def _resolve_number(self) -> None:
        """The shard's current primary number, read from `sending_numbers` every tick: a rotation (by a
        sender or by an operator) moves this unit's traffic within one tick."""
        with self.engine.connect() as conn:
            row = conn.execute(query("fanout/current_number"), {"shard": self.unit.shard}).fetchone()
        if row is None:
            raise RuntimeError(f"no active primary number for shard {self.unit.shard}")
        with self._lock:
            if self.number is None or row.phone_number_id != self.number.phone_number_id:
                log.info("%s sends from %s (%s)", self.unit.label, row.display_phone, row.phone_number_id)
                self.result.numbers_used.append(row.phone_number_id)
            self.number = row

    def _initial_bucket(self) -> None:
        self.bucket = AdaptiveBucket(self.number.throughput_mps * config.SENDER_RATE_HEADROOM / self.unit.peers)

    def _heartbeat(self) -> int:
        with self.engine.begin() as conn:
            return conn.execute(query("fanout/heartbeat"), {
                "lease_id": self.lease, "business_date": self.unit.business_date, "shard": self.unit.shard,
                "segment": self.unit.segment, "phone_number_id": self.number.phone_number_id}).scalar_one()

    def _release(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(query("fanout/release_lease"), {"lease_id": self.lease})

    def _claim(self, limit: int) -> list:
        elapsed_ms = int((time.monotonic() - self.started) * 1000) if self.opt.jitter_honoured else 2**31 - 1
        segments = list(self.unit.segments)
        cursors = [self._cursor.get(seg, (-1, -1)) for seg in segments]
        with self.engine.begin() as conn:
            rows = conn.execute(self._q("claim"), self._scope() | {
                "elapsed_ms": elapsed_ms, "limit": limit, "phone_number_id": self.number.phone_number_id,
                "after_jitter": [c[0] for c in cursors], "after_advisor": [c[1] for c in cursors]}).fetchall()
        return rows

    def _advance_cursors(self, rows) -> None:
        """Move each group's keyset cursor past what was claimed (on the loop thread, its only user)."""
        for r in rows:
            self._templates_in_use.add((r.template_name, r.template_language))
            seg, jitter = getattr(r, "segment", None), getattr(r, "jitter_ms", None)
            if seg is not None and jitter is not None:
                self._cursor[seg] = max(self._cursor.get(seg, (-1, -1)), (jitter, r.advisor_id))

    def _rewind(self) -> None:
        """Start the cursors over (at most every few seconds): a row skipped while another transaction held
        its lock, and never claimed since, is behind the cursor and would otherwise wait forever."""
        now = time.monotonic()
        if self._cursor and now - self._last_rewind >= 5.0:
            self._cursor.clear()
            self._last_rewind = now

    OUTCOME_COLUMNS = ("delivery_id", "status", "wamid", "error_code", "error_title", "skip_reason", "latency_ms",
                       "next_attempt_at", "refund_attempt", "at")
    ATTEMPT_COLUMNS = ("business_date", "advisor_id", "attempt_no", "phone_number_id", "outcome", "error_code",
                       "latency_ms")

    def _drain(self) -> tuple[list[dict], list[dict], list[str]]:
        """Take the buffered outcomes. Called on the event-loop thread, the only one that appends, so
        no outcome can land in a list that is already being written."""
        outcomes, self.outcomes = self.outcomes, []
        attempts, self.attempts = self.attempts, []
        opt_outs, self.opt_outs = self.opt_outs, []
        return outcomes, attempts, opt_outs

    def _write(self, outcomes: list[dict], attempts: list[dict], opt_outs: list[str]) -> None:
        """One statement per table for the whole batch (arrays unnested in SQL), not one per row; a
        131050's DNC entry is written in the same transaction as the failure it comes from."""
        if not self.QUERIES.get("record_attempt"):
            attempts = []
        if not outcomes and not attempts and not opt_outs:
            return
        with self.engine.begin() as conn:
            if outcomes:
                conn.execute(self._q("record_outcome"), {c: [o[c] for o in outcomes] for c in self.OUTCOME_COLUMNS})
            if attempts:
                conn.execute(self._q("record_attempt"), {c: [a[c] for a in attempts] for c in self.ATTEMPT_COLUMNS})
            for phone in opt_outs:
                conn.execute(query("fanout/add_opt_out"), {"phone_e164": phone})

    async def _flush(self) -> None:
        outcomes, attempts, opt_outs = self._drain()
        if not (outcomes or attempts or opt_outs):
            return
        try:
            await self._db(self._write, outcomes, attempts, opt_outs)
        except TRANSIENT_DB_ERRORS:
            # PostgreSQL is away (restart, failover): keep the outcomes, in order, for the next flush.
            self.outcomes[:0], self.attempts[:0], self.opt_outs[:0] = outcomes, attempts, opt_outs
            raise

    def _remaining(self):
        with self.engine.connect() as conn:
            return conn.execute(self._q("remaining"), self._scope()).one()

    def _alert_once(self, key: str, alert: Alert) -> None:
        post_once(self.engine, self.unit.business_date, key, alert)

    # -- outcomes -------------------------------------------------------------------------------
    def _outcome(self, row, status: str, *, wamid=None, error: WhatsAppError | None = None, skip_reason=None,
                 latency_ms=None, next_attempt_at=None, refund=False, attempt_outcome: str | None = None) -> None:
        code = None
        if error is not None:
            code = error.code if error.code is not None else error.http_status
        self.outcomes.append({
            "delivery_id": row.delivery_id, "status": status, "wamid": wamid, "error_code": code,
            "error_title": error.title if error else None, "skip_reason": skip_reason, "latency_ms": latency_ms,
            "next_attempt_at": next_attempt_at, "refund_attempt": 1 if refund else 0, "at": dt.datetime.now(dt.UTC)})
        if attempt_outcome:
            self.attempts.append({"business_date": self.unit.business_date, "advisor_id": row.advisor_id,
                                  "attempt_no": row.attempts, "phone_number_id": self.number.phone_number_id,
                                  "outcome": attempt_outcome, "error_code": code, "latency_ms": latency_ms})

    def _skip_if_unreachable(self, row) -> bool:
        """DNC and opt-out are re-checked at send time (the claim reads them): such a row is skipped."""
        if not (row.dnc or row.opted_out):
            return False
        reason = "dnc_at_send_time" if row.dnc else "opted_out_at_send_time"
        self._outcome(row, "skipped", skip_reason=reason, refund=True, attempt_outcome="skipped")
        self.result.skipped += 1
        return True

    def _put_back(self, rows) -> None:
        """Claimed rows that were not sent (pause, stop) go back to the queue, their attempt refunded."""
        for row in rows:
            self._outcome(row, "queued", refund=True)

    async def _send_one(self, client: AsyncWhatsAppClient, row) -> None:
        """One request; the pacing loop took its token before starting it."""
        try:
            try:
                res = await client.send_template(
                    self.number.phone_number_id, row.phone_e164, row.template_name, row.template_language,
                    [row.name, row.title, row.disclaimer], image_link=image_link(row.render_uri, row.pack_key),
                    biz_opaque_callback_data=row.idempotency_key)
            except WhatsAppError as err:
                self._handle_error(row, err)
                return
            self._outcome(row, "accepted", wamid=res.wamid, latency_ms=res.latency_ms, attempt_outcome="accepted")
            self.result.accepted += 1
            if res.held_for_quality_assessment:
                self.result.held += 1
                with self._lock:
                    self._held[row.template_name] = self._held.get(row.template_name, 0) + 1
        except Exception:  # a bug must not strand the row: it becomes 'unknown' and is reconciled
            log.exception("%s: unexpected error sending to %s", self.unit.label, mask_phone(row.phone_e164))
            self._outcome(row, "unknown", attempt_outcome="unknown")
            self.result.unknown += 1
        finally:
            self._in_flight -= 1

    def _handle_error(self, row, err: WhatsAppError) -> None:
        now = dt.datetime.now(dt.UTC)
        klass = err.error_class
        if err.outcome_unknown:
            # The request may have been accepted: never resend blindly (include/delivery/unknown_outcomes.py decides).
            self._outcome(row, "unknown", error=err, attempt_outcome="unknown")
            self.result.unknown += 1
            return
        if klass is ErrorClass.AUTH:
            self._outcome(row, "queued", error=err, refund=True, attempt_outcome="retry")
            self._stop("auth")
            return
        if klass is ErrorClass.POLICY:
            self._outcome(row, "queued", error=err, refund=True, attempt_outcome="retry")
            with self._lock:
                self._policy_hit = err
            return
        if klass is ErrorClass.TEMPLATE and err.code in (132015, 132016, 132001):
            self._outcome(row, "queued", error=err, refund=True, attempt_outcome="retry")
            with self._lock:
                self._template_hit = (row.template_name, row.template_language, err)
            return
        if klass is ErrorClass.THROUGHPUT:
            self.bucket.throttled()
            self.result.throttled += 1
        if err.retryable and row.attempts < self.opt.max_attempts:
            delay = backoff_s(err, row.attempts)
            self._outcome(row, "queued", error=err, next_attempt_at=now + dt.timedelta(seconds=delay),
                          refund=klass is ErrorClass.THROUGHPUT, attempt_outcome="retry")
            self.result.retried += 1
            return
        if err.proposes_dnc:
            self.opt_outs.append(row.phone_e164)  # written with the failure, off the event loop
        log.info("%s: %s failed permanently: %s", self.unit.label, mask_phone(row.phone_e164), err.title)
        self._outcome(row, "failed", error=err, attempt_outcome="failed")
        self.result.failed += 1
        with self._lock:
            self._failed_by_class[str(err.error_class)] += 1

    # -- the kill switch: its own lane -------------------------------------------------------------
    def _read_kill_switch(self) -> bool:
        try:
            return is_sending_paused(self.engine)
        except TRANSIENT_DB_ERRORS:
            # A switch that cannot be read cannot be honoured: hold new sends until it can be read again.
            log.warning("%s: kill switch unreadable (database unavailable); holding sends", self.unit.label)
            return True

    async def _watch_kill_switch(self) -> None:
        while True:
            paused = await self._db(self._read_kill_switch)
            if paused and not self.paused:
                log.warning("%s: kill switch is on (or unreadable); stopping new sends", self.unit.label)
            elif self.paused and not paused:
                log.warning("%s: sending resumed", self.unit.label)
            self.paused = paused
            await asyncio.sleep(self.opt.kill_switch_poll_s)

    # -- the lease tick: number, share of its throughput ---------------------------------------------
    def _lease_tick(self) -> float:
        """Runs every tick in a worker thread; returns this sender's share of its number's throughput."""
        self._resolve_number()
        live = self._heartbeat()
        return self.number.throughput_mps * config.SENDER_RATE_HEADROOM / max(1, live)

    async def _tick(self) -> None:
        try:
            ceiling = await self._db(self._lease_tick)
            self.bucket.set_ceiling(ceiling)  # on the loop thread, the bucket's only user
            await self._flush()
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("%s: database unavailable during the tick (%s); retrying", self.unit.label,
                        type(exc).__name__)

    # -- slow control: number health, rotation, templates, monitoring --------------------------------
    def progress_line(self, now: float, final: bool = False) -> str:
        """What an operator reads in the task log every few seconds: sent, by outcome, the rate against the
        number's limit, and what is left (rows open when the unit started minus the ones it settled)."""
        r = self.result
        since, accepted_then = self._last_progress
        rate = (r.accepted - accepted_then) / max(0.001, now - since)
        with self._lock:
            by_class = dict(self._failed_by_class)
        failed = ", ".join(f"{k} {n}" for k, n in sorted(by_class.items())) or "none"
        done = r.accepted + r.failed + r.skipped
        left = max(0, self._open_at_start - done)
        limit = self.bucket.ceiling if self.bucket else 0.0
        head = "finished" if final else "progress"
        return (f"{self.unit.label} {head}: {r.accepted} accepted, {r.failed} failed ({failed}), {r.skipped} skipped, "
                f"{r.retried} retried, {r.unknown} unknown outcome, {r.held} held; "
                f"{rate:.1f} msg/s against a limit of {limit:.1f} msg/s on {self.number.display_phone}; "
                f"{'paused; ' if self.paused else ''}{left} of {self._open_at_start} left")

    def _log_progress(self, now: float) -> None:
        if now - self._last_progress[0] >= self.opt.progress_log_s:
            log.info("%s", self.progress_line(now))
            self._last_progress = (now, self.result.accepted)

    def _slow_control(self) -> None:
        """Runs in a worker thread beside the pacing loop; may wait on Slack or the Graph API."""
        now = time.monotonic()
        self._log_progress(now)
        self._react_to_lifecycle_state()
        if now - self._last_number_check >= self.opt.number_check_s:
            self._last_number_check = now
            self._check_number_quality()
        with self._lock:
            policy, self._policy_hit = self._policy_hit, None
            template, self._template_hit = self._template_hit, None
        if policy:
            self._rotate(f"policy error {policy.code} from WhatsApp: {policy}")
        if template:
            old, language, err = template
            self._switch_template(old, language, f"rejected by the API ({err.code}: {err})", sync_first=True)
        if self.MONITORED and now - self._last_monitor >= 5.0:
            self._last_monitor = now
            from include.delivery.monitoring import check_window

            check_window(self.engine, self.unit.business_date, self.context, self._alert_once)

    async def _slow_tick(self) -> None:
        try:
            await self._db(self._slow_control)
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("%s: database unavailable during control work (%s)", self.unit.label, type(exc).__name__)

    def _react_to_lifecycle_state(self) -> None:
        """What Meta's lifecycle webhooks told the receiver, which keeps `whatsapp_templates` and `sending_numbers`
        current: a template paused or disabled, or the number turned RED, is acted on within this tick, without
        waiting for a failed send or the next Graph poll."""
        with self._lock:
            in_use = set(self._templates_in_use)
        if in_use:
            with self.engine.connect() as conn:
                unusable = conn.execute(query("fanout/unusable_templates"),
                                        {"names": sorted({n for n, _ in in_use})}).fetchall()
            for t in unusable:
                if (t.name, t.language) in in_use:
                    with self._lock:
                        self._templates_in_use.discard((t.name, t.language))
                    self._switch_template(t.name, t.language, f"{t.status} (template status webhook)")
        with self._lock:
            held = dict(self._held)
        for template, n in held.items():
            self._alert_once(f"template-paced:{template}", Alert(
                Severity.P1, f"WhatsApp is pacing template {template}: messages held for quality assessment",
                {"held so far (this unit)": n, "what it means": "accepted, but Meta sends them later or drops them "
                 "with a failed status (132015) if feedback is poor; the 5-minute window may be missed",
                 "runbook": "watch the failed statuses; consider the backup variant"},
                RunRef.from_context(self.context)))
        number = self.number
        if number.quality_rating == "RED":
            self._rotate("number quality RED reported by WhatsApp (phone_number_quality_update) mid-run")
        tier = getattr(number, "messaging_tier", None)
        if tier != self._tier_seen:
            self._tier_seen = tier
            self._check_tier(tier)

    def _check_tier(self, tier: str | None) -> None:
        """The number's messaging limit (kept current by phone_number_quality_update): page when it does not
        cover today's recipients. The limit is shared by the portfolio's numbers, so rotating would not help."""
        try:
            limit = numbers.tier_limit(tier or "")
        except ValueError:
            return  # an unknown tier is the 05:50 check's finding, not a reason to page mid-run
        with self.engine.connect() as conn:
            planned = conn.execute(query("fanout/planned_count"), {"business_date": self.unit.business_date}).scalar()
        if limit is not None and planned and limit < planned:
            self._alert_once(f"tier-below-plan:{tier}", Alert(
                Severity.P1, f"Messaging limit {tier} is below today's {planned} recipients",
                {"number": self.number.phone_number_id, "limit (unique recipients/24 h)": limit,
                 "what happens": "sends past the limit fail (131049/131056); the SLA check will show them"},
                RunRef.from_context(self.context)))

    def _check_number_quality(self) -> None:
        try:
            with WhatsAppClient(self.settings) as c:
                info = c.get_phone_number(self.number.phone_number_id)
        except WhatsAppError as exc:
            if exc.error_class is ErrorClass.AUTH:
                self._stop("auth")
            return
        if info.get("quality_rating") == "RED" or info.get("status") not in (None, "CONNECTED"):
            self._rotate(f"number quality {info.get('quality_rating')} / status {info.get('status')} mid-run")

    def _rotate(self, reason: str) -> None:
        old = self.number.phone_number_id
        try:
            moved = numbers.rotate_to_hot_spare(self.engine, old, reason, self.opt.actor, self.unit.business_date)
        except numbers.RotationError as exc:
            # Another sender of this shard may have rotated already; otherwise there is no spare left.
            self._resolve_number()
            if self.number.phone_number_id == old:
                self._stop("no_hot_spare")
                self._alert_once(f"no-spare:{old}", Alert(
                    Severity.P0, f"Cannot rotate {old}: {exc}", {"shard": self.unit.shard},
                    RunRef.from_context(self.context)))
            return
        self._resolve_number()
        self._alert_once(f"rotated:{old}", Alert(
            Severity.P0, f"Sending number {old} rotated to hot spare {moved['to']}",
            {"reason": reason, "shard": moved["shard"], "rows moved": moved["rows_moved"]},
            RunRef.from_context(self.context)))

    def _switch_template(self, old: str, language: str, why: str, sync_first: bool = False) -> None:
        """Move the date's unsent rows of `old` to the approved backup variant. After an API rejection the
        stored statuses may be stale, so they are synced from Graph first; a webhook has just updated them."""
        if sync_first:
            with WhatsAppClient(self.settings) as c:
                templates.sync_templates(self.engine, c)
        decision = templates.decide_variants(self.engine)
        new = decision.chosen.get(language)
        if not new or new == old:
            self._stop("no_template")
            self._alert_once(f"no-template:{old}", Alert(
                Severity.P0, f"Template {old} ({language}) not usable and no approved backup variant",
                {"why": why}, RunRef.from_context(self.context)))
            return
        with self.engine.begin() as conn:
            n = conn.execute(self._q("retarget_template"), self._scope() | {
                "old_template": old, "new_template": new}).rowcount
        with self._lock:
            self._templates_in_use.add((new, language))
        self._alert_once(f"template-switch:{old}", Alert(
            Severity.P1, f"Template {old} is not usable: switched to {new}",
            {"language": language, "why": why, "rows switched": n}, RunRef.from_context(self.context)))

    def _load_templates_in_use(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(self._q("unit_templates"), self._scope()).fetchall()
        with self._lock:
            self._templates_in_use.update((r.template_name, r.template_language) for r in rows)

    # -- unknown outcomes -------------------------------------------------------------------------------
    def _settle_unknown(self) -> None:
        """Settle this unit's rows whose outcome is unknown, from webhooks only, before anything is resent."""
        with self.engine.connect() as conn:
            rows = conn.execute(self._q("stale_unresolved"), self._scope() | {
                "stale_s": self.opt.stale_sending_s}).fetchall()
        if not rows:
            return
        settled = unknown_outcomes.settle(
            self.engine, rows, {"evidence": self.QUERIES["evidence"], "watermark": self.QUERIES["watermark"],
                                "resolve": self.QUERIES["resolve_unknown"]},
            margin_s=self.opt.watermark_margin_s, min_age_s=self.opt.unknown_resolve_after_s)
        self.result.reconciled_accepted += settled.accepted
        self.result.reconciled_requeued += settled.requeued

    # -- main loop ---------------------------------------------------------------------------------
    async def run(self) -> UnitResult:
        """Pace sends to the bucket in batches: one loop hands out the tokens banked since its last
        wake-up and starts that many requests, while claims, control and outcome writes run in worker
        threads beside it (a token never waits for a database round trip)."""
        await self._db(self._resolve_number)
        self._initial_bucket()
        await self._db(self._load_templates_in_use)
        await self._db(self._settle_unknown)
        opened = await self._db(self._remaining)
        self._open_at_start = opened.queued + opened.unresolved
        log.info("%s starts: %d messages to send from %s (%.0f msg/s)", self.unit.label, self._open_at_start,
                 self.number.display_phone, self.number.throughput_mps)
        self.paused = await self._db(self._read_kill_switch)
        await self._tick()  # the lease is live (peers see this sender) before the first send
        # A template paused or a number flagged before this unit started is acted on before its first send.
        await self._slow_tick()
        if self.unit.peers > 1:
            # Joining a shared number: give the senders already on it one control tick to see this lease
            # and shrink their share before this one sends, then take the share the leases leave.
            await asyncio.sleep(1.5 * self.opt.control_tick_s)
            await self._tick()
        next_control = time.monotonic() + self.opt.control_tick_s
        control: asyncio.Task | None = None
        slow: asyncio.Task | None = None
        claim: asyncio.Task | None = None
        claimed_nothing = False
        next_claim = 0.0
        next_idle_check = 0.0
        settle_started: float | None = None
        ready: deque = deque()  # claimed ('sending') rows waiting for a token
        tasks: set[asyncio.Task] = set()
        pause_started = None
        kill_switch = asyncio.create_task(self._watch_kill_switch())
        async with AsyncWhatsAppClient(self.settings) as client:
            try:
                while True:
                    now = time.monotonic()
                    deadline = self.started + self.opt.hard_deadline_s + self.result.paused_seconds
                    if kill_switch.done():
                        kill_switch.result()  # a bug in the watcher fails the unit here
                    for lane in (control, slow):
                        if lane is not None and lane.done():
                            lane.result()  # a failed control lane fails the unit here
                    control = None if control is not None and control.done() else control
                    slow = None if slow is not None and slow.done() else slow
                    if now >= next_control:
                        next_control = now + self.opt.control_tick_s
                        if control is None:
                            control = asyncio.create_task(self._tick())
                        if slow is None:
                            slow = asyncio.create_task(self._slow_tick())
                    if claim is not None and claim.done():
                        claim, done = None, claim
                        try:
                            rows = done.result()
                        except TRANSIENT_DB_ERRORS as exc:  # nothing was claimed; try again shortly
                            log.warning("%s: claim failed (%s); retrying", self.unit.label, type(exc).__name__)
                            rows, next_claim = [], now + 1.0
                        else:
                            claimed_nothing = not rows
                            if claimed_nothing:
                                next_claim = now + 0.05
                        self._advance_cursors(rows)
                        ready.extend(r for r in rows if not self._skip_if_unreachable(r))
                    if self.stop_reason:
                        break
                    if self.paused:
                        self._put_back(ready)  # stop new sends at once; the rows stay queued
                        ready.clear()
                        pause_started = pause_started or now
                        if self.result.paused_seconds + (now - pause_started) >= self.opt.max_pause_s:
                            self._stop("paused_too_long")
                            break
                        await asyncio.sleep(0.05)
                        continue
                    if pause_started is not None:
                        self.result.paused_seconds += now - pause_started
                        pause_started = None
                    rate = self.bucket.rate
                    if claim is None and now >= next_claim and len(ready) < max(8.0, rate * 0.25):
                        # About half a second of sends per claim: few round trips, few rows held 'sending'.
                        want = int(min(self.opt.claim_batch, max(16.0, rate * 0.5))) - len(ready)
                        claim = asyncio.create_task(self._db(self._claim, max(1, want)))
                        claimed_nothing = False
                    room = self.opt.max_in_flight - self._in_flight
                    if ready and room > 0:
                        for _ in range(self.bucket.take(min(room, len(ready)))):
                            self._in_flight += 1
                            t = asyncio.create_task(self._send_one(client, ready.popleft()))
                            tasks.add(t)
                            t.add_done_callback(tasks.discard)
                    idle = not ready and claim is None and claimed_nothing and self._in_flight == 0
                    if idle and now >= next_idle_check:
                        next_idle_check = now + 0.25
                        try:
                            await self._flush()
                            await self._db(self._settle_unknown)
                            left = await self._db(self._remaining)
                        except TRANSIENT_DB_ERRORS as exc:
                            log.warning("%s: database unavailable (%s); retrying", self.unit.label,
                                        type(exc).__name__)
                            next_idle_check = now + 1.0
                            continue
                        if left.queued == 0 and left.unresolved == 0:
                            break
                        if left.queued:
                            settle_started = None
                            self._rewind()
                        else:
                            # Only sends of unknown outcome are left: wait, bounded, for their webhooks.
                            settle_started = settle_started or now
                            next_idle_check = now + self.opt.settle_poll_s
                            if now - settle_started >= self.opt.settle_wait_s:
                                break
                        if now >= deadline:
                            self._stop("deadline")
                            break
                    if ready and room > 0:
                        await asyncio.sleep(min(0.02, max(0.001, self.bucket.wait_time())))
                    else:
                        await asyncio.sleep(0.005)
            finally:
                kill_switch.cancel()
                for pending in (claim, control, slow):
                    if pending is not None:
                        try:
                            rows = await pending
                        except Exception:  # its rows stay 'sending' and are settled by the resolver later
                            log.exception("%s: a claim or control lane failed while stopping", self.unit.label)
                            rows = None
                        if pending is claim and rows:
                            ready.extend(rows)
                self._put_back(ready)
                if tasks:
                    await asyncio.gather(*tasks, return_exceptions=True)
                await self._flush()
                await self._db(self._release)
        return await self._db(self._finish)

    def _finish(self) -> UnitResult:
        """Count what is left and say so: a unit never ends 'success' with rows still queued."""
        left = self._remaining()
        self.result.remaining_queued = left.queued
        self.result.unknown_left = left.unresolved
        self.result.stopped_reason = self.stop_reason
        self.result.elapsed_s = round(time.monotonic() - self.started, 2)
        self._last_progress = (self.started, 0)  # the closing line's rate is the whole run's
        log.info("%s", self.progress_line(time.monotonic(), final=True)
                 + f"; {left.queued} still queued, {left.unresolved} unknown; {self.result.elapsed_s:.1f} s")
        ref = RunRef.from_context(self.context)
        if self.stop_reason == "auth":
            self._alert_once("auth-190", Alert(
                Severity.P0, "WhatsApp access token rejected (190): sending stopped, rows kept queued",
                {"unit": self.unit.label, "rows left": left.queued + left.unresolved}, ref))
            raise AuthFailure("WhatsApp access token invalid or expired (190); rows kept queued")
        if left.unresolved:
            self._alert_once(f"unknown-left:{self.unit.shard}:{self.unit.segment}", Alert(
                Severity.P1, f"{left.unresolved} sends of {self.unit.label} have an unknown outcome: not resent",
                {"why": "the API timed out or the connection broke after the request left, and no status "
                        "webhook settles them yet", "next": "post-delivery reconciliation settles them from "
                        "webhooks; whatever stays unknown is listed in its report for an operator"}, ref))
        if left.queued:
            why = {"deadline": f"the unit's deadline ({self.opt.hard_deadline_s:.0f} s of sending) passed",
                   "paused_too_long": f"sending was paused for more than {self.opt.max_pause_s:.0f} s",
                   "no_hot_spare": "its number failed and no hot spare was left",
                   "no_template": "its template was rejected and no backup variant is approved",
                   }.get(self.stop_reason or "", f"it stopped ({self.stop_reason or 'no reason recorded'})")
            self._alert_once(f"unit-incomplete:{self.unit.shard}:{self.unit.segment}:{self.stop_reason}", Alert(
                Severity.P0, f"{self.unit.label} stopped with {left.queued} messages still queued: {why}",
                {"accepted by this unit": self.result.accepted, "still queued": left.queued,
                 "unknown outcome": left.unresolved,
                 "to finish": "fix the cause, then clear the task or run ops_backfill_delivery; queued rows are "
                              "sent once, never twice"}, ref))
            raise UnitIncomplete(f"{self.unit.label}: {left.queued} rows still queued because {why}")
        return self.result


def send_unit(engine: Engine, settings: WhatsAppSettings, unit: dict, options: SenderOptions | None = None,
              context: dict | None = None) -> dict:
    """Entry point of one mapped `send_shard` task."""
    sender = ShardSender(engine, settings, Unit.from_dict(unit), options or SenderOptions(), context)
    return run_async(sender.run()).as_dict()


def run_async(coro):
    """Run a sender's event loop: uvloop when installed (measured ~15% less CPU per request here)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# -- DAG entry points ------------------------------------------------------------------------------
def prepare_fanout(engine: Engine, business_date: dt.date) -> list[dict]:
    """Make sure the date has a plan (building it for a backfill), queue it, and return the units."""
    from include.content import readiness as content
    from include.delivery import planning

    with engine.connect() as conn:
        planned = conn.execute(query("plan/exists"), {"business_date": business_date}).fetchone()
    if planned is None:
        log.warning("no plan for %s: building it now (backfill or missed pre-delivery check)", business_date)
        content.assign_content(engine, business_date)
        chosen = templates.decide_variants(engine).chosen
        planning.build_plan(engine, business_date, chosen)
    queued = enqueue(engine, business_date)
    units = units_for(engine, business_date)
    log.info("fan-out %s: %d deliveries queued now, %d units", business_date, queued, len(units))
    return units


class LateStart(RuntimeError):
    """A scheduled fan-out started too long after its slot to send without a person deciding."""


def refuse_late_scheduled_start(context: dict, now: dt.datetime | None = None,
                                max_late_s: int = config.FANOUT_MAX_LATE_START_S) -> None:
    """Stop a *scheduled* run that starts more than `max_late_s` after its slot (scheduler down at 06:00
    and back at 14:00: Airflow runs the missed slot at once even with catchup=False). Posts a P0 and
    raises LateStart; manual runs and ops_backfill_delivery are operators' decisions and always proceed."""
    from include.core.dagkit import run_type

    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    if run_type(dag_run) != "scheduled" or run_after is None:
        return
    late_s = ((now or dt.datetime.now(dt.UTC)) - run_after).total_seconds()
    if late_s <= max_late_s:
        return
    minutes = int(late_s // 60)
    post(Alert(Severity.P0, f"Scheduled fan-out started {minutes} min late: nothing sent automatically",
               {"slot": run_after.isoformat(), "allowed lateness": f"{max_late_s // 60} min",
                "to send anyway": "trigger ops_backfill_delivery with the business date and a reason"},
               RunRef.from_context(context)))
    raise LateStart(f"scheduled run started {minutes} min after its slot (limit {max_late_s // 60} min); "
                    "use ops_backfill_delivery to send this date deliberately")


def refuse_dates_other_than_today(requested: dt.date, today: dt.date) -> None:
    """`delivery_fanout` delivers today (IST) only. A past date is a backfill, which needs a reason and an
    audit row (`ops_backfill_delivery`); a future date has nothing to deliver yet."""
    if requested > today:
        raise ValueError(f"business date {requested} is in the future (today in IST is {today}); "
                         "nothing can be delivered for it yet")
    if requested < today:
        raise ValueError(f"business date {requested} is not today ({today} in IST): delivering a past date is a "
                         "backfill; trigger ops_backfill_delivery with the date and a reason (it is audited)")


def refuse_generic_backfill(context: dict) -> None:
    """Airflow's generic Backfill of `delivery_fanout` would send past dates with no reason, no audit row and no
    archived-date check: only `ops_backfill_delivery` delivers a past date."""
    from include.core.dagkit import run_type

    if run_type(context.get("dag_run")) == "backfill":
        raise ValueError("Airflow's Backfill does not deliver packs: a past date is sent only through "
                         "ops_backfill_delivery, with a reason, an audit row and the archived-date check")


def run_prepare_send_queue(context: dict, business_date: dt.date, scheduled_dag: bool) -> list[dict]:
    """Body of `prepare_send_queue`: on the scheduled DAG, the late-start guard and today-only for a date an
    operator typed; then prepare_fanout."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.core.dagkit import fail_fast_on_bad_input
    from include.core.dates import ist_today
    from include.core.db import get_engine

    if scheduled_dag:
        try:
            refuse_late_scheduled_start(context)
        except LateStart as exc:
            raise AirflowFailException(str(exc)) from exc  # retrying later would only be later
        with fail_fast_on_bad_input():
            refuse_generic_backfill(context)
            if (context.get("params") or {}).get("business_date"):
                refuse_dates_other_than_today(business_date, ist_today())
    return prepare_fanout(get_engine(), business_date)


def run_send_shard(unit: dict, context: dict) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    from include.core.db import get_engine
    from include.whatsapp.client import WhatsAppHook

    hook = WhatsAppHook()
    params = context.get("params") or {}
    options = SenderOptions(jitter_honoured=bool(params.get("honour_jitter", True)))
    try:
        return send_unit(get_engine(), hook.get_settings(), unit, options, context)
    except AuthFailure as exc:
        raise AirflowFailException(str(exc)) from exc  # a bad token does not heal by retrying


def validate_sla(engine: Engine, business_date: dt.date, context: dict | None = None,
                 results: list[dict] | None = None) -> dict:
    """>= 99% of the plan accepted within the 5-minute window, else a P0 with counts by reason."""
    with engine.connect() as conn:
        s = conn.execute(query("fanout/sla"), {"business_date": business_date,
                                               "window_s": config.SEND_WINDOW_SECONDS}).one()
        reasons = conn.execute(query("fanout/outcome_reasons"), {"business_date": business_date}).fetchall()
    if s.queued_total == 0 and s.planned > 0 and context is not None:
        from include.core.dagkit import run_type

        if run_type(context.get("dag_run")) != "scheduled":
            # An operator's run whose prepare_send_queue refused the request (a wrong date): nothing was queued,
            # the refusal is on that task, and a P0 "SLA missed" would page on-call for a typo.
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(f"nothing was queued for {business_date}: see prepare_send_queue")
    sendable = max(0, s.planned - s.skipped)
    ratio = (s.accepted_by_deadline / sendable) if sendable else 1.0
    facts = {"business date": business_date.isoformat(), "planned": s.planned, "accepted": s.accepted,
             "accepted within window": s.accepted_by_deadline, "skipped (DNC/opt-out)": s.skipped,
             "failed": s.failed, "still queued/unresolved": s.unresolved, "accepted ratio": f"{ratio:.2%}"}
    details = [f"{r.status} {r.reason}: {r.n}" for r in reasons]
    met = ratio >= config.ACCEPTED_SLA_RATIO
    ref = RunRef.from_context(context)
    if not met:
        post(Alert(Severity.P0, f"Delivery SLA missed: {ratio:.2%} accepted within "
                                f"{config.SEND_WINDOW_SECONDS // 60} min (target {config.ACCEPTED_SLA_RATIO:.0%})",
                   facts, ref, details))
    post(Alert(Severity.INFO, f"Delivery fan-out summary for {business_date}", facts, ref, details))
    return {"sla_met": met, "ratio": ratio, **{k: v for k, v in s._mapping.items() if k != "window_started"}}


def fail_run_if_a_task_failed(context: dict) -> None:
    """The run's last word: a fan-out whose refusal, sender or SLA check failed shows as a failed run, even
    though `validate_delivery_sla` (trigger rule all_done) still ran and succeeded after it."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException("a fan-out task failed (see the red task); rows not sent stay queued")
