"""A unit's control plane, the lanes beside the pacing loop, none waiting on another or on a send:

* the kill switch: its own poll, so a pause is honoured within a poll even while Slack or the Graph API hangs;
* the lease tick: the shard's current number, the lease heartbeat and this sender's share of the number;
* the slow control work: lifecycle webhooks' verdicts (template paused, number RED, tier), the number's
  quality, rotation to the hot spare, template switches, in-window monitoring; it may wait on Slack or Graph.

Every method but `watch_kill_switch` blocks and runs in a worker thread (state shared with the loop: state.py).
"""
from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from sqlalchemy.engine import Engine

from include.content import templates
from include.core import config
from include.core.alerting import Alert, RunRef, Severity, post_once
from include.core.db import query
from include.delivery import numbers
from include.delivery.fanout.state import UnitState
from include.delivery.fanout.units import SenderOptions, Unit
from include.delivery.fanout.work_queue import TRANSIENT_DB_ERRORS, WorkQueue
from include.delivery.kill_switch import is_sending_paused
from include.whatsapp.client import ErrorClass, WhatsAppClient, WhatsAppError, WhatsAppSettings

log = logging.getLogger(__package__)


class Peers(NamedTuple):
    live: int               # live leases on the number, this sender's included
    earliest_peer_s: float  # how long the earliest other live lease has been held (0 when alone)


class ControlPlane:
    def __init__(self, engine: Engine, settings: WhatsAppSettings, unit: Unit, options: SenderOptions,
                 context: dict | None, queue: WorkQueue, state: UnitState, lease: str, monitored: bool = True):
        self.engine = engine
        self.settings = settings
        self.unit = unit
        self.opt = options
        self.context = context
        self.queue = queue
        self.state = state
        self.lease = lease
        self.monitored = monitored  # in-window failure-rate paging applies to the advisors' fan-out only
        self._last_number_check = 0.0
        self._last_monitor = 0.0
        self._last_budget = 0.0
        self._tier_seen: str | None = None  # the last messaging tier checked against the plan

    def alert_once(self, key: str, alert: Alert) -> None:
        post_once(self.engine, self.unit.business_date, key, alert)

    # -- the kill switch ---------------------------------------------------------------------------
    def read_kill_switch(self) -> bool:
        try:
            return is_sending_paused(self.engine)
        except TRANSIENT_DB_ERRORS:
            # A switch that cannot be read cannot be honoured: hold new sends until it can be read again.
            log.warning("%s: kill switch unreadable (database unavailable); holding sends", self.unit.label)
            return True

    async def watch_kill_switch(self) -> None:
        """Runs on the loop thread, the pause flag's only writer."""
        while True:
            paused = await asyncio.to_thread(self.read_kill_switch)
            if paused and not self.state.paused:
                log.warning("%s: kill switch is on (or unreadable); stopping new sends", self.unit.label)
            elif self.state.paused and not paused:
                log.warning("%s: sending resumed", self.unit.label)
            self.state.paused = paused
            await asyncio.sleep(self.opt.kill_switch_poll_s)

    # -- the lease tick ----------------------------------------------------------------------------
    def resolve_number(self) -> None:
        """The shard's current primary number, read from `sending_numbers` every tick: a rotation (by a
        sender or by an operator) moves this unit's traffic within one tick."""
        with self.engine.connect() as conn:
            row = conn.execute(query("fanout/current_number"), {"shard": self.unit.shard}).fetchone()
        if row is None:
            raise RuntimeError(f"no active primary number for shard {self.unit.shard}")
        self.state.set_number(row)

    def heartbeat(self) -> Peers:
        """Renew this sender's lease; returns how many live leases share the number (this one included) and
        how long the earliest of the others has held its lease."""
        with self.engine.begin() as conn:
            row = conn.execute(query("fanout/heartbeat"), {
                "lease_id": self.lease, "business_date": self.unit.business_date, "shard": self.unit.shard,
                "segment": self.unit.segment, "phone_number_id": self.state.number.phone_number_id}).one()
        return Peers(int(row.live), float(row.earliest_peer_s))

    def share(self, live: int) -> float:
        """A sender's share of its number's throughput when `live` senders are on it."""
        return self.state.number.throughput_mps * config.SENDER_RATE_HEADROOM / max(1, live)

    def release(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(query("fanout/release_lease"), {"lease_id": self.lease})

    def lease_tick(self) -> float:
        """This sender's share of its number's throughput."""
        self.resolve_number()
        return self.share(self.heartbeat().live)

    def start_gate(self) -> Peers:
        """The start gate's poll: renew the lease (on the number as it is now) and see the peers."""
        self.resolve_number()
        return self.heartbeat()

    # -- slow control ------------------------------------------------------------------------------
    def load_templates_in_use(self) -> None:
        self.state.use_templates((r.template_name, r.template_language) for r in self.queue.unit_templates())

    def slow_control(self, now: float) -> None:
        self._react_to_lifecycle_state()
        if now - self._last_number_check >= self.opt.number_check_s:
            self._last_number_check = now
            self._check_number_quality()
        policy, template = self.state.take_hits()
        if policy:
            self._rotate(f"policy error {policy.code} from WhatsApp: {policy}")
        if template:
            old, language, err = template
            self._switch_template(old, language, f"rejected by the API ({err.code}: {err})", sync_first=True)
        if now - self._last_budget >= config.BUDGET_CHECK_S:
            # The spend budget is checked here, in every sender's slow lane (also the canary's: all sends cost):
            # cheap (watermarked ledger refresh under a try-lock, totals over <= 31 rows), off the pacing loop, and
            # the kill switch it engages is seen by every sender's own 0.25 s poll. See include/delivery/budget.py.
            self._last_budget = now
            from include.delivery import budget

            try:
                budget.check_budget(self.engine, self.context)
            except TRANSIENT_DB_ERRORS:
                raise
            except Exception as exc:  # a broken guard must not stop the sends: it pages instead
                log.exception("%s: spend budget check failed", self.unit.label)
                self.alert_once("budget-guard-failed", Alert(
                    Severity.P1, "Spend budget guard failing: spend is not being checked during this run",
                    {"error": f"{type(exc).__name__}: {exc}"[:300]}, RunRef.from_context(self.context)))
        if self.monitored and now - self._last_monitor >= 5.0:
            self._last_monitor = now
            from include.delivery.monitoring import check_window

            check_window(self.engine, self.unit.business_date, self.context, self.alert_once)

    def _react_to_lifecycle_state(self) -> None:
        """What Meta's lifecycle webhooks told the receiver, which keeps `whatsapp_templates` and `sending_numbers`
        current: a template paused or disabled, or the number turned RED, is acted on within this tick, without
        waiting for a failed send or the next Graph poll."""
        in_use = self.state.templates_in_use()
        if in_use:
            with self.engine.connect() as conn:
                unusable = conn.execute(query("fanout/unusable_templates"),
                                        {"names": sorted({n for n, _ in in_use})}).fetchall()
            for t in unusable:
                if (t.name, t.language) in in_use:
                    self.state.drop_template((t.name, t.language))
                    self._switch_template(t.name, t.language, f"{t.status} (template status webhook)")
        for template, n in self.state.held().items():
            self.alert_once(f"template-paced:{template}", Alert(
                Severity.P1, f"WhatsApp is pacing template {template}: messages held for quality assessment",
                {"held so far (this unit)": n, "what it means": "accepted, but Meta sends them later or drops them "
                 "with a failed status (132015) if feedback is poor; the 5-minute window may be missed",
                 "runbook": "watch the failed statuses; consider the backup variant"},
                RunRef.from_context(self.context)))
        number = self.state.number
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
            self.alert_once(f"tier-below-plan:{tier}", Alert(
                Severity.P1, f"Messaging limit {tier} is below today's {planned} recipients",
                {"number": self.state.number.phone_number_id, "limit (unique recipients/24 h)": limit,
                 "what happens": "sends past the limit fail (131049/131056); the SLA check will show them"},
                RunRef.from_context(self.context)))

    def _check_number_quality(self) -> None:
        try:
            with WhatsAppClient(self.settings) as c:
                info = c.get_phone_number(self.state.number.phone_number_id)
        except WhatsAppError as exc:
            if exc.error_class is ErrorClass.AUTH:
                self.state.stop("auth")
            return
        if info.get("quality_rating") == "RED" or info.get("status") not in (None, "CONNECTED"):
            self._rotate(f"number quality {info.get('quality_rating')} / status {info.get('status')} mid-run")

    def _rotate(self, reason: str) -> None:
        old = self.state.number.phone_number_id
        try:
            moved = numbers.rotate_to_hot_spare(self.engine, old, reason, self.opt.actor, self.unit.business_date)
        except numbers.RotationError as exc:
            # Another sender of this shard may have rotated already; otherwise there is no spare left.
            self.resolve_number()
            if self.state.number.phone_number_id == old:
                self.state.stop("no_hot_spare")
                self.alert_once(f"no-spare:{old}", Alert(
                    Severity.P0, f"Cannot rotate {old}: {exc}", {"shard": self.unit.shard},
                    RunRef.from_context(self.context)))
            return
        self.resolve_number()
        self.alert_once(f"rotated:{old}", Alert(
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
            self.state.stop("no_template")
            self.alert_once(f"no-template:{old}", Alert(
                Severity.P0, f"Template {old} ({language}) not usable and no approved backup variant",
                {"why": why}, RunRef.from_context(self.context)))
            return
        n = self.queue.retarget_template(old, new)
        self.state.use_templates([(new, language)])
        self.alert_once(f"template-switch:{old}", Alert(
            Severity.P1, f"Template {old} is not usable: switched to {new}",
            {"language": language, "why": why, "rows switched": n}, RunRef.from_context(self.context)))

