"""The unknown-outcome rule, table-driven: what a sender or post-delivery does with a send whose fate is
not known, from production evidence only (status webhooks and the webhook watermark)."""
import datetime as dt

import pytest

from include.delivery.unknown_outcomes import ACCEPTED, KEEP, REQUEUE, decide

T0 = dt.datetime(2026, 11, 23, 0, 30, tzinfo=dt.UTC)  # when the unknown attempt started


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("sending_at, evidence, watermark, now, expected", [
    # A status webhook of this attempt settles it, whatever the watermark or age.
    (T0, "wamid.A", None, at(1), ACCEPTED),
    (T0, "wamid.A", at(3600), at(3600), ACCEPTED),
    # No webhook at all (late, or the receiver is down): never resent.
    (T0, None, None, at(3600), KEEP),
    # Statuses stored only for messages accepted before or just after it: too close to judge.
    (T0, None, at(-30), at(60), KEEP),
    (T0, None, at(9), at(60), KEEP),
    # Statuses stored for messages accepted well after it, none for it: it was never accepted.
    (T0, None, at(10), at(60), REQUEUE),
    (T0, None, at(300), at(400), REQUEUE),
    # Younger than the minimum age: not judged yet, even with a watermark far ahead.
    (T0, None, at(300), at(5), KEEP),
    # Never marked as sent: no request can have left.
    (None, None, None, at(5), REQUEUE),
])
def test_decide(sending_at, evidence, watermark, now, expected):
    verdict = decide(sending_at, evidence, watermark, now, margin_s=10, min_age_s=20)
    assert verdict.action == expected, verdict.reason
    assert verdict.wamid == (evidence if expected == ACCEPTED else None)
    assert verdict.reason
