"""The fan-out sender: paces one unit's sends to its number's token bucket and records what happened.

A unit streams its due rows from its work queue in claimed batches (work_queue.py), sends them concurrently
through the async WhatsApp client inside its number's adaptive token bucket, and writes outcomes back in
batches. The idempotency key (business date, advisor) is the row's unique key and travels as
`biz_opaque_callback_data`. A failed send's fate is error_policy.decide's; the lanes beside the pacing loop
(kill switch, lease tick, slow control) are control.py's; which thread owns what is state.py's docstring.

Crash safety: a row is 'sending' only while a request may be in flight. A row whose outcome is
unknown (timeout or reset after the bytes left, or a sender killed mid-batch) is settled only from what
Meta gives, its status webhooks and the webhook watermark (include/delivery/unknown_outcomes.py), and stays
'unknown' (reported, paged) rather than being resent on a guess.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections import deque
from typing import Any

from sqlalchemy.engine import Engine

from include.core import config
from include.core.alerting import Alert, RunRef, Severity
from include.core.phones import mask_phone
from include.delivery import unknown_outcomes
from include.delivery.fanout.control import ControlPlane
from include.delivery.fanout.error_policy import Kind, decide
from include.delivery.fanout.outcomes import OutcomeBuffer
from include.delivery.fanout.state import UnitState
from include.delivery.fanout.units import AuthFailure, SenderOptions, Unit, UnitIncomplete, UnitResult
from include.delivery.fanout.work_queue import TRANSIENT_DB_ERRORS, DeliveryQueue, WorkQueue
from include.delivery.ratelimit import AdaptiveBucket
from include.whatsapp.client import AsyncWhatsAppClient, WhatsAppError, WhatsAppSettings

log = logging.getLogger(__package__)


def image_link(render_uri: str | None, pack_key: str, base: str | None = None) -> str:
    """The public URL WhatsApp fetches the header image from (renders are published under the CDN base)."""
    base = (config.RENDER_PUBLIC_BASE_URL if base is None else base).rstrip("/")
    if render_uri:
        return f"{base}/renders/{render_uri.rsplit('/', 1)[-1]}"
    return f"{base}/evergreen/{pack_key}.jpg"


class ShardSender:
    """Sends one unit's rows from its work queue: the advisors' deliveries by default, or the nightly
    canary's rows when include/content/canary.py hands it a CanaryQueue (with monitoring off)."""

    def __init__(self, engine: Engine, settings: WhatsAppSettings, unit: Unit, options: SenderOptions,
                 context: dict | None = None, *, queue: WorkQueue | None = None, monitored: bool = True):
        self.engine = engine
        self.settings = settings
        self.unit = unit
        self.opt = options
        self.context = context
        self.queue: WorkQueue = queue if queue is not None else DeliveryQueue(engine, unit)
        self.result = UnitResult(unit.as_dict())
        self.state = UnitState(unit, self.result)
        self.lease = str(uuid.uuid4())
        self._image_base = config.RENDER_PUBLIC_BASE_URL  # read once: image_link runs for every message
        self.control = ControlPlane(engine, settings, unit, options, context, self.queue, self.state, self.lease,
                                    monitored=monitored)
        self.buffer = OutcomeBuffer(unit.business_date)
        self.bucket: AdaptiveBucket | None = None
        self.started = time.monotonic()
        self._in_flight = 0
        self._window = options.min_in_flight  # requests kept open at once, resized every control tick
        self._latency_sum, self._answers = 0.0, 0  # the API's answers since the last resize, and their seconds
        self._open_at_start = 0
        self._last_progress = (time.monotonic(), 0)  # (when, accepted then): the progress log's rate window

    @property
    def number(self) -> Any:
        return self.state.number

    @property
    def stop_reason(self) -> str | None:
        return self.state.stop_reason

    @property
    def paused(self) -> bool:
        return self.state.paused

    async def _db(self, fn, *args):
        """Every blocking database call of the sender goes through here, off the event loop."""
        return await asyncio.to_thread(fn, *args)

    def _stop(self, reason: str) -> None:
        self.state.stop(reason)

    # -- the lease (control.py does the work) -------------------------------------------------------
    def _resolve_number(self) -> None:
        self.control.resolve_number()

    def _lease_tick(self) -> float:
        return self.control.lease_tick()

    def _release(self) -> None:
        self.control.release()

    def _initial_bucket(self) -> None:
        self.bucket = AdaptiveBucket(self.number.throughput_mps * config.SENDER_RATE_HEADROOM / self.unit.peers)

    async def _tick(self) -> None:
        try:
            ceiling = await self._db(self._lease_tick)
            self.bucket.set_ceiling(ceiling)  # on the loop thread, the bucket's only user
            self._resize_window()
            await self._flush()
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("%s: database unavailable during the tick (%s); retrying", self.unit.label,
                        type(exc).__name__)

    def _resize_window(self) -> None:
        """The in-flight window for the share and the API's latency since the last tick (loop thread)."""
        if self._answers:
            self._window = self.opt.in_flight_for(self.bucket.ceiling, self._latency_sum / self._answers)
            self._latency_sum, self._answers = 0.0, 0

    async def _start_gate(self) -> None:
        """Senders sharing a number start together. Each waits (at most `peer_start_wait_s`) until every peer
        planned on the number holds a live lease, then sends at the share the leases give: no sender runs
        alone at a quarter of the number while its peers' processes are still starting, and none has taken a
        larger share that a late peer would add to. A sender arriving after its peers' gate has closed (they may
        have grown into the number) gives them one control tick to see its lease and shrink first."""
        poll = min(0.05, self.opt.control_tick_s)
        give_up = time.monotonic() + self.opt.peer_start_wait_s
        while True:
            try:
                peers = await self._db(self.control.start_gate)
            except TRANSIENT_DB_ERRORS as exc:  # PostgreSQL away: keep the planned share, try again shortly
                log.warning("%s: database unavailable at the start gate (%s); retrying", self.unit.label,
                            type(exc).__name__)
                if time.monotonic() >= give_up:
                    return  # the bucket keeps its planned share (the number's throughput / planned peers)
                await asyncio.sleep(4 * poll)
                continue
            if peers.earliest_peer_s >= self.opt.peer_start_wait_s - 2 * poll:
                await asyncio.sleep(1.5 * self.opt.control_tick_s)
                await self._tick()
                return
            if peers.live >= self.unit.peers or time.monotonic() >= give_up:
                self.bucket.set_ceiling(self.control.share(peers.live))
                if peers.live < self.unit.peers:
                    log.info("%s: %d of %d senders on %s after %.1f s; sending at the share of the live ones",
                             self.unit.label, peers.live, self.unit.peers, self.number.display_phone,
                             self.opt.peer_start_wait_s)
                return
            await asyncio.sleep(poll)

    async def _slow_tick(self) -> None:
        try:
            await self._db(self._slow_control)
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("%s: database unavailable during control work (%s)", self.unit.label, type(exc).__name__)

    def _slow_control(self) -> None:
        """Runs in a worker thread beside the pacing loop; may wait on Slack or the Graph API."""
        now = time.monotonic()
        self._log_progress(now)
        self.control.slow_control(now)

    # -- the queue -------------------------------------------------------------------------------
    def _claim(self, limit: int) -> list:
        elapsed_ms = int((time.monotonic() - self.started) * 1000) if self.opt.jitter_honoured else 2**31 - 1
        return self.queue.claim(limit, elapsed_ms, self.number.phone_number_id)

    def _claimed(self, rows) -> None:
        """Rows a claim returned, on the loop thread: the cursor moves past them and their templates are
        watched by the lifecycle checks from now on."""
        self.queue.advance(rows)
        if rows:
            self.state.use_templates({(r.template_name, r.template_language) for r in rows})

    async def _flush(self) -> None:
        outcomes, attempts, opt_outs = self.buffer.drain()
        if not (outcomes or attempts or opt_outs):
            return
        try:
            await self._db(self.queue.write, outcomes, attempts, opt_outs)
        except TRANSIENT_DB_ERRORS:
            # PostgreSQL is away (restart, failover): keep the outcomes, in order, for the next flush.
            self.buffer.restore(outcomes, attempts, opt_outs)
            raise

    def _remaining(self):
        return self.queue.remaining()

    def _settle_unknown(self) -> None:
        """Settle this unit's rows whose outcome is unknown, from webhooks only, before anything is resent."""
        rows = self.queue.stale_unresolved(self.opt.stale_sending_s)
        if not rows:
            return
        settled = unknown_outcomes.settle(self.queue, rows, margin_s=self.opt.watermark_margin_s,
                                          min_age_s=self.opt.unknown_resolve_after_s)
        self.result.reconciled_accepted += settled.accepted
        self.result.reconciled_requeued += settled.requeued

    # -- outcomes (loop thread) ---------------------------------------------------------------------
    def _outcome(self, row, status: str, **kw) -> None:
        self.buffer.add(row, status, self.number.phone_number_id, **kw)

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
        sent_at = time.monotonic()
        try:
            try:
                res = await client.send_template(
                    self.number.phone_number_id, row.phone_e164, row.template_name, row.template_language,
                    [row.name, row.title, row.disclaimer],
                    image_link=image_link(row.render_uri, row.pack_key, self._image_base),
                    biz_opaque_callback_data=row.idempotency_key)
            except WhatsAppError as err:
                self._handle_error(row, err, sent_at)
                return
            self._outcome(row, "accepted", wamid=res.wamid, latency_ms=res.latency_ms, attempt_outcome="accepted")
            self.result.accepted += 1
            if res.held_for_quality_assessment:
                self.result.held += 1
                self.state.count_held(row.template_name)
        except Exception:  # a bug must not strand the row: it becomes 'unknown' and is reconciled
            log.exception("%s: unexpected error sending to %s", self.unit.label, mask_phone(row.phone_e164))
            self._outcome(row, "unknown", attempt_outcome="unknown")
            self.result.unknown += 1
        finally:
            self._in_flight -= 1
            self._latency_sum += time.monotonic() - sent_at
            self._answers += 1

    def _handle_error(self, row, err: WhatsAppError, sent_at: float | None = None) -> None:
        """Apply error_policy's decision: outcomes are buffered here, on the loop thread; what the control
        lane must act on (stop, rotation, template switch) is handed over under the state's lock."""
        action = decide(err, row.attempts, self.opt.max_attempts)
        if action.kind is Kind.UNKNOWN_OUTCOME:
            # The request may have been accepted: never resend blindly (include/delivery/unknown_outcomes.py decides).
            self._outcome(row, "unknown", error=err, attempt_outcome="unknown")
            self.result.unknown += 1
            return
        if action.kind in (Kind.STOP_RUN, Kind.ROTATE_NUMBER, Kind.SWITCH_TEMPLATE):
            self._outcome(row, "queued", error=err, refund=action.refund, attempt_outcome="retry")
            if action.kind is Kind.STOP_RUN:
                self._stop("auth")
            elif action.kind is Kind.ROTATE_NUMBER:
                self.state.policy_hit(err)
            else:
                self.state.template_hit(row.template_name, row.template_language, err)
            return
        if action.throttled:
            self.bucket.throttled(sent_at)  # one cut per round trip, not one per answer of the same bunch
            self.result.throttled += 1
        if action.kind is Kind.RETRY:
            due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=action.delay_s)
            self._outcome(row, "queued", error=err, next_attempt_at=due, refund=action.refund,
                          attempt_outcome="retry")
            self.result.retried += 1
            return
        if action.add_to_dnc:
            self.buffer.opt_out(row.phone_e164)  # written with the failure, off the event loop
        log.info("%s: %s failed permanently: %s", self.unit.label, mask_phone(row.phone_e164), err.title)
        self._outcome(row, "failed", error=err, attempt_outcome="failed")
        self.result.failed += 1
        self.state.count_failure(str(err.error_class))

    # -- progress --------------------------------------------------------------------------------
    def progress_line(self, now: float, final: bool = False) -> str:
        """What an operator reads in the task log every few seconds: sent, by outcome, the rate against the
        number's limit, and what is left (rows open when the unit started minus the ones it settled)."""
        r = self.result
        since, accepted_then = self._last_progress
        rate = (r.accepted - accepted_then) / max(0.001, now - since)
        by_class = self.state.failed_by_class()
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
        """Slow control lane only (one at a time), the progress window's only writer until `_finish`."""
        if now - self._last_progress[0] >= self.opt.progress_log_s:
            log.info("%s", self.progress_line(now))
            self._last_progress = (now, self.result.accepted)

    # -- main loop ---------------------------------------------------------------------------------
    async def run(self) -> UnitResult:
        """Pace sends to the bucket in batches: one loop hands out the tokens banked since its last
        wake-up and starts that many requests, while claims, control and outcome writes run in worker
        threads beside it (a token never waits for a database round trip)."""
        await self._db(self._resolve_number)
        self._initial_bucket()

        async def templates_then_control():
            await self._db(self.control.load_templates_in_use)
            # A template paused or a number flagged before this unit started is acted on before its first send.
            await self._slow_tick()

        async def settle_then_count():
            await self._db(self._settle_unknown)
            return await self._db(self._remaining)

        # Three independent round-trip chains, side by side: on two busy cores each waits more than it works, and
        # in sequence they were most of a sender's start (0.2-0.7 s with five senders starting at once).
        done = await asyncio.gather(templates_then_control(), settle_then_count(),
                                    self._db(self.control.read_kill_switch), return_exceptions=True)
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
        _, opened, self.state.paused = done
        self._open_at_start = opened.queued + opened.unresolved
        log.info("%s starts: %d messages to send from %s (%.0f msg/s)", self.unit.label, self._open_at_start,
                 self.number.display_phone, self.number.throughput_mps)
        # The lease goes live (peers see this sender) only now, ready to send: peers waiting at the start gate
        # for it then start together with it, not while it is still doing the work above.
        gate_started = time.monotonic()
        if self.unit.peers > 1:
            await self._start_gate()
        else:
            await self._tick()
        ready_at = time.monotonic()
        self.result.startup_s = round(ready_at - self.started, 3)
        self.result.start_gate_s = round(ready_at - gate_started, 3)
        log.info("%s: ready to send %.2f s after starting (checks %.2f s, waiting for peers %.2f s)", self.unit.label,
                 self.result.startup_s, gate_started - self.started, self.result.start_gate_s)
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
        kill_switch = asyncio.create_task(self.control.watch_kill_switch())
        # The pool holds the window of the whole number (the most this sender's share can grow to); a rotation to
        # a faster number mid-run only queues requests beyond it for a free connection.
        pool = max(self.settings.max_connections, self.opt.in_flight_for(self.number.throughput_mps, None))
        async with AsyncWhatsAppClient(dataclasses.replace(self.settings, max_connections=pool)) as client:
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
                        self._claimed(rows)
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
                        if claim is None and self._in_flight == 0 and now >= next_idle_check:
                            # Paused after its last send (the budget's stop can land just then): with nothing
                            # queued or unresolved there is nothing to wait for, so the unit ends now.
                            next_idle_check = now + 1.0
                            try:
                                await self._flush()
                                left = await self._db(self._remaining)
                            except TRANSIENT_DB_ERRORS as exc:
                                log.warning("%s: database unavailable (%s); retrying", self.unit.label,
                                            type(exc).__name__)
                            else:
                                if left.queued == 0 and left.unresolved == 0:
                                    break
                        await asyncio.sleep(0.05)
                        continue
                    if pause_started is not None:
                        self.result.paused_seconds += now - pause_started
                        pause_started = None
                    rate = self.bucket.rate
                    if claim is None and now >= next_claim and len(ready) < max(8.0, rate * 0.2):
                        # Topped up to half a second of sends, from under a fifth: at least 0.3 s of sends per
                        # claim (few round trips; a claim's cost is mostly per statement), few rows held 'sending'.
                        want = int(min(self.opt.claim_batch, max(16.0, rate * 0.5))) - len(ready)
                        claim = asyncio.create_task(self._db(self._claim, max(1, want)))
                        claimed_nothing = False
                    room = self._window - self._in_flight
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
                            self.queue.rewind()
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
            self.control.alert_once("auth-190", Alert(
                Severity.P0, "WhatsApp access token rejected (190): sending stopped, rows kept queued",
                {"unit": self.unit.label, "rows left": left.queued + left.unresolved}, ref))
            raise AuthFailure("WhatsApp access token invalid or expired (190); rows kept queued")
        if left.unresolved:
            self.control.alert_once(f"unknown-left:{self.unit.shard}:{self.unit.segment}", Alert(
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
            self.control.alert_once(f"unit-incomplete:{self.unit.shard}:{self.unit.segment}:{self.stop_reason}", Alert(
                Severity.P0, f"{self.unit.label} stopped with {left.queued} messages still queued: {why}",
                {"accepted by this unit": self.result.accepted, "still queued": left.queued,
                 "unknown outcome": left.unresolved,
                 "to finish": "fix the cause, then clear the task or run ops_backfill_delivery; queued rows are "
                              "sent once, never twice"}, ref))
            raise UnitIncomplete(f"{self.unit.label}: {left.queued} rows still queued because {why}")
        return self.result
