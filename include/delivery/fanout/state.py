"""What a unit's lanes share, and which thread owns what.

A sender runs its pacing loop on the event-loop thread and its database and control work in worker threads
(`asyncio.to_thread`): the lease tick, the slow control lane, claims, settles. Ownership:

* loop thread only: the outcome buffers (appended by sends, drained by flushes), the token bucket, the
  ready rows, the in-flight count and the send counters of `UnitResult`; the pause flag is written only
  there, by the kill-switch lane (a bool the progress line may read from elsewhere);
* under `UnitState`'s lock: the number in use (and `numbers_used`), the stop reason, the policy and template
  hits sends report to the control lane, the templates in use, held counts and failures by class;
* the settle of unknown outcomes (a worker thread, awaited by the loop before it settles again): the
  `reconciled_*` counters; `_finish` runs after every lane and send has ended;
* the slow control lane's own (one such task at a time): its check timers, the tier last seen and the
  progress log's rate window;
* the work queue's keyset cursor: behind the queue's own lock (include/delivery/fanout/work_queue.py).
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

from include.delivery.fanout.units import Unit, UnitResult
from include.whatsapp.client import WhatsAppError

log = logging.getLogger(__package__)


class UnitState:
    def __init__(self, unit: Unit, result: UnitResult):
        self._unit = unit
        self._result = result
        self._lock = threading.Lock()
        self._number: Any = None
        self._stop_reason: str | None = None
        self._policy_hit: WhatsAppError | None = None
        self._template_hit: tuple[str, str, WhatsAppError] | None = None
        self._templates_in_use: set[tuple[str, str]] = set()  # (name, language) this unit sends or will send
        self._held: dict[str, int] = {}  # template -> sends WhatsApp held for quality assessment (pacing)
        self._failed_by_class: Counter[str] = Counter()  # permanent failures by error class (progress log)
        self.paused = False

    # A reference read is atomic, so readers take the current number and stop reason without the lock.
    @property
    def number(self) -> Any:
        return self._number

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def set_number(self, row: Any) -> None:
        with self._lock:
            if self._number is None or row.phone_number_id != self._number.phone_number_id:
                log.info("%s sends from %s (%s)", self._unit.label, row.display_phone, row.phone_number_id)
                self._result.numbers_used.append(row.phone_number_id)
            self._number = row

    def stop(self, reason: str) -> None:
        """The first reason wins: a later one is a consequence of stopping."""
        with self._lock:
            self._stop_reason = self._stop_reason or reason

    def policy_hit(self, error: WhatsAppError) -> None:
        with self._lock:
            self._policy_hit = error

    def template_hit(self, name: str, language: str, error: WhatsAppError) -> None:
        with self._lock:
            self._template_hit = (name, language, error)

    def take_hits(self) -> tuple[WhatsAppError | None, tuple[str, str, WhatsAppError] | None]:
        with self._lock:
            policy, self._policy_hit = self._policy_hit, None
            template, self._template_hit = self._template_hit, None
        return policy, template

    def use_templates(self, pairs) -> None:
        with self._lock:
            self._templates_in_use.update(pairs)

    def drop_template(self, pair: tuple[str, str]) -> None:
        with self._lock:
            self._templates_in_use.discard(pair)

    def templates_in_use(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._templates_in_use)

    def count_held(self, template: str) -> None:
        with self._lock:
            self._held[template] = self._held.get(template, 0) + 1

    def held(self) -> dict[str, int]:
        with self._lock:
            return dict(self._held)

    def count_failure(self, error_class: str) -> None:
        with self._lock:
            self._failed_by_class[error_class] += 1

    def failed_by_class(self) -> dict[str, int]:
        with self._lock:
            return dict(self._failed_by_class)
