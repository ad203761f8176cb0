"""What to do about one failed send, decided from the error alone: a pure function over the one code table
(`ERROR_CLASSES` / `RETRYABLE` in include/whatsapp/client.py). The sender applies the `Action`; operators'
retries (include/operations/actions.py) ask `retryable_code`, so both re-send exactly the same codes."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from include.whatsapp.client import ERROR_CLASSES, RETRYABLE, ErrorClass, WhatsAppError

Uniform = Callable[[float, float], float]

# Template errors the backup variant cures; the other template codes are our request's fault, failed as is.
SWITCH_TEMPLATE_CODES = frozenset({132001, 132015, 132016})


class Kind(StrEnum):
    UNKNOWN_OUTCOME = "unknown_outcome"  # the request may have been accepted: settled from webhooks, never resent
    STOP_RUN = "stop_run"                # the token or account is refused: keep the rows queued, stop
    ROTATE_NUMBER = "rotate_number"      # the number is blocked: move the shard to its hot spare
    SWITCH_TEMPLATE = "switch_template"  # the template is gone or paused: move the rows to the backup variant
    RETRY = "retry"
    FAIL = "fail"


@dataclass(frozen=True)
class Action:
    kind: Kind
    delay_s: float = 0.0      # RETRY: how long until the row is due again
    refund: bool = False      # the attempt does not count towards max_attempts (not the recipient's fault)
    throttled: bool = False   # a throughput limit: the number's bucket slows down, whatever else happens
    add_to_dnc: bool = False  # FAIL of a recipient who stopped marketing messages (131050)


def backoff_s(error: WhatsAppError, attempt: int, uniform: Uniform = random.uniform) -> float:
    """Retry delay: 4^x s for a pair-rate limit (that recipient only), else exponential with jitter."""
    if error.error_class is ErrorClass.PAIR_RATE:
        return float(4 ** max(1, attempt))
    if error.error_class is ErrorClass.THROUGHPUT:
        return uniform(0.2, 1.0)
    return min(30.0, 0.5 * 2 ** (attempt - 1)) * uniform(0.8, 1.2)


def decide(error: WhatsAppError, attempts: int, max_attempts: int, uniform: Uniform = random.uniform) -> Action:
    """The action for a send that failed with `error` on its `attempts`-th attempt."""
    klass = error.error_class
    if error.outcome_unknown:
        return Action(Kind.UNKNOWN_OUTCOME)
    if klass is ErrorClass.AUTH:
        return Action(Kind.STOP_RUN, refund=True)
    if klass is ErrorClass.POLICY:
        return Action(Kind.ROTATE_NUMBER, refund=True)
    if klass is ErrorClass.TEMPLATE and error.code in SWITCH_TEMPLATE_CODES:
        return Action(Kind.SWITCH_TEMPLATE, refund=True)
    throttled = klass is ErrorClass.THROUGHPUT
    if error.retryable and attempts < max_attempts:
        return Action(Kind.RETRY, delay_s=backoff_s(error, attempts, uniform), refund=throttled, throttled=throttled)
    return Action(Kind.FAIL, throttled=throttled, add_to_dnc=error.proposes_dnc)


def retryable_code(code: int | None) -> bool:
    """Whether a failure with this Graph error code may be re-sent: only a code the explicit table
    (include/whatsapp.ERROR_CLASSES) classes as retryable. An unknown code is never retried: a stored
    code is not an HTTP status, and guessing wrong would resend a permanent failure to every advisor."""
    return code is not None and ERROR_CLASSES.get(code) in RETRYABLE
