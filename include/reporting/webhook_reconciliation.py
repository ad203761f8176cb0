"""Turning stored webhook events into delivery outcomes (the receiver only stores them).

Set-based and idempotent (sql/queries/webhooks/apply_statuses.sql): statuses never move backwards,
read implies delivered, duplicates and reordering only fill in timestamps, a failure carries its
error code and title. Runs in batches with a cursor so that events waiting on a row the sender
still holds never block the rest.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from include.core import config
from include.core.db import query

log = logging.getLogger(__name__)


@dataclass
class ReconcileResult:
    scanned: int = 0
    deliveries_updated: int = 0
    events_processed: int = 0
    batches: int = 0

    @property
    def left_unprocessed(self) -> int:
        return self.scanned - self.events_processed

    def as_dict(self) -> dict:
        return dict(self.__dict__, left_unprocessed=self.left_unprocessed)


def reconcile_webhooks(engine: Engine, batch: int | None = None,
                       orphan_after_s: int | None = None) -> ReconcileResult:
    batch = config.RECONCILE_BATCH if batch is None else batch
    orphan_after_s = config.WEBHOOK_ORPHAN_AFTER_S if orphan_after_s is None else orphan_after_s
    result = ReconcileResult()
    after = 0
    while True:
        with engine.begin() as conn:
            r = conn.execute(query("webhooks/apply_statuses"), {
                "batch": batch, "after_id": after, "orphan_after_s": orphan_after_s}).one()
        result.batches += 1
        result.scanned += r.scanned
        result.deliveries_updated += r.deliveries_updated
        result.events_processed += r.events_processed
        if r.scanned < batch or r.last_id is None:
            break
        after = r.last_id
    log.info("webhook reconciliation: %s", result.as_dict())
    return result


def processing_lag(engine: Engine) -> dict:
    with engine.connect() as conn:
        r = conn.execute(query("webhooks/lag")).one()
    return {"unprocessed": r.unprocessed,
            "oldest_unprocessed_s": round(float(r.oldest_unprocessed_s), 1) if r.oldest_unprocessed_s else 0.0,
            "p95_processing_s": round(float(r.p95_processing_s), 1) if r.p95_processing_s is not None else None}
