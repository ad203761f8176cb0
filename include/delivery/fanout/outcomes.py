"""A unit's outcome buffers: what happened to each send, held until the next flush writes it in one batch.

Appended and drained on the event-loop thread only (sends and flushes both run there), so no outcome can land
in a list that is already being written; the write itself runs in a worker thread on the drained lists.
"""
from __future__ import annotations

import datetime as dt

from include.whatsapp.client import WhatsAppError


class OutcomeBuffer:
    def __init__(self, business_date: dt.date):
        self._business_date = business_date
        self.outcomes: list[dict] = []
        self.attempts: list[dict] = []
        self.opt_outs: list[str] = []

    def add(self, row, status: str, phone_number_id: str, *, wamid=None, error: WhatsAppError | None = None,
            skip_reason=None, latency_ms=None, next_attempt_at=None, refund=False,
            attempt_outcome: str | None = None) -> None:
        code = None
        if error is not None:
            code = error.code if error.code is not None else error.http_status
        self.outcomes.append({
            "delivery_id": row.delivery_id, "status": status, "wamid": wamid, "error_code": code,
            "error_title": error.title if error else None, "skip_reason": skip_reason, "latency_ms": latency_ms,
            "next_attempt_at": next_attempt_at, "refund_attempt": 1 if refund else 0, "at": dt.datetime.now(dt.UTC)})
        if attempt_outcome:
            self.attempts.append({"business_date": self._business_date, "advisor_id": row.advisor_id,
                                  "attempt_no": row.attempts, "phone_number_id": phone_number_id,
                                  "outcome": attempt_outcome, "error_code": code, "latency_ms": latency_ms})

    def opt_out(self, phone_e164: str) -> None:
        """A 131050: the recipient joins do-not-contact, written with the failure it comes from."""
        self.opt_outs.append(phone_e164)

    def drain(self) -> tuple[list[dict], list[dict], list[str]]:
        outcomes, self.outcomes = self.outcomes, []
        attempts, self.attempts = self.attempts, []
        opt_outs, self.opt_outs = self.opt_outs, []
        return outcomes, attempts, opt_outs

    def restore(self, outcomes: list[dict], attempts: list[dict], opt_outs: list[str]) -> None:
        """Put a batch that could not be written back in front, in order, for the next flush."""
        self.outcomes[:0], self.attempts[:0], self.opt_outs[:0] = outcomes, attempts, opt_outs
