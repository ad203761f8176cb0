"""The quality-drop policy (include/delivery/cooldown.py): message classes, the ramp over simulated days, the cap
and the overflow allocation. Pure: dates are injected."""
import datetime as dt

import pytest

from include.delivery import cooldown as c

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
MON = dt.date(2026, 11, 23)


def at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(5, 50), tzinfo=IST)


@pytest.mark.parametrize("kind, critical", [
    ("daily_pack", True), ("fanout", True), ("backfill", True),
    ("canary", False), ("resend", False), ("retry", False), ("marketing_variant", False), ("Marketing", False)])
def test_message_classes(kind, critical):
    assert c.is_critical(kind) is critical


def test_unknown_kind_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown kind of send 'promo'.*canary"):
        c.classify("promo")


@pytest.mark.parametrize("kind, quality, share, held", [
    ("canary", "GREEN", None, False), ("canary", "YELLOW", None, True), ("canary", "MEDIUM", None, True),
    ("resend", "RED", None, True), ("resend", "GREEN", 50, True), ("resend", "GREEN", 100, False),
    ("daily_pack", "RED", 0, False), ("marketing", "UNKNOWN", 25, True)])
def test_hold_reason(kind, quality, share, held):
    assert (c.hold_reason(kind, quality, share) is not None) is held


# Each row: the business date's quality, then the share after it is judged. The drop is recorded Tuesday 05:50
# (YELLOW), RED on Wednesday resets the cooldown (48 h from Wednesday 05:50), so Thursday is still cooldown,
# Friday is the first step.
WEEK = [
    (1, "YELLOW", 0, "hold"),        # Tue: the drop day itself
    (2, "RED", 0, "reset"),          # Wed: RED resets, cooldown until Fri 05:50
    (3, "GREEN", 0, "in cooldown"),  # Thu
    (4, "GREEN", 25, "step 1"),      # Fri
    (5, "YELLOW", 25, "hold"),       # Sat: YELLOW holds
    (6, "GREEN", 50, "step 2"),      # Sun
    (7, "UNKNOWN", 50, "hold"),      # Mon: not a known GREEN
    (8, "HIGH", 75, "step 3"),       # Tue: HIGH is GREEN
    (9, "GREEN", 100, "ramp complete"),
]


def test_ramp_over_simulated_days():
    ramp = c.open_ramp(at(MON + dt.timedelta(days=1)), 48)
    assert ramp.cooldown_until == at(MON + dt.timedelta(days=3))
    for offset, quality, share, word in WEEK:
        day = MON + dt.timedelta(days=offset)
        d = c.evaluate_day(ramp, day, quality, at(day), 48)
        assert d.ramp.share_pct == share and word in d.decision, (day, quality, d)
        ramp = d.ramp
    assert ramp.ended and ramp.step == 4


def test_each_day_is_judged_once():
    ramp = c.open_ramp(at(MON), 48)
    first = c.evaluate_day(ramp, MON + dt.timedelta(days=2), "GREEN", at(MON + dt.timedelta(days=2)), 48).ramp
    again = c.evaluate_day(first, MON + dt.timedelta(days=2), "GREEN", at(MON + dt.timedelta(days=2)), 48)
    assert not again.changed and again.ramp == first and first.share_pct == 25


@pytest.mark.parametrize("hours, ok", [(47, False), (48, True), (72, True), (73, False)])
def test_cooldown_must_be_48_to_72_hours(hours, ok):
    if ok:
        assert c.open_ramp(at(MON), hours).cooldown_until == at(MON) + dt.timedelta(hours=hours)
    else:
        with pytest.raises(ValueError, match="48-72 hours"):
            c.open_ramp(at(MON), hours)


def test_a_72_hour_cooldown_delays_the_first_step_a_day():
    ramp = c.open_ramp(at(MON), 72)
    shares = []
    for offset in range(1, 5):
        day = MON + dt.timedelta(days=offset)
        ramp = c.evaluate_day(ramp, day, "GREEN", at(day), 72).ramp
        shares.append(ramp.share_pct)
    assert shares == [0, 0, 25, 50]


@pytest.mark.parametrize("share, end, expect_share, ended", [
    (50, False, 50, False), (0, False, 0, False), (100, False, 100, True), (None, True, 100, True)])
def test_override(share, end, expect_share, ended):
    r = c.override(c.open_ramp(at(MON), 48), share, end)
    assert (r.share_pct, r.ended) == (expect_share, ended)
    if share:  # above 0 the waiting period is over: the next GREEN day steps
        nxt = c.evaluate_day(r, MON + dt.timedelta(days=1), "GREEN", at(MON + dt.timedelta(days=1)), 48)
        assert nxt.ramp.share_pct == min(100, share + 25) or r.ended


@pytest.mark.parametrize("share, end", [(None, False), (50, True), (120, False)])
def test_bad_override(share, end):
    with pytest.raises(ValueError):
        c.override(c.open_ramp(at(MON), 48), share, end)


@pytest.mark.parametrize("normal, share, allowed", [(50, 0, 0), (50, 25, 12), (50, 50, 25), (51, 75, 38),
                                                    (50, 100, 50), (0, 25, 0)])
def test_cap(normal, share, allowed):
    assert c.cap(normal, share) == allowed


@pytest.mark.parametrize("excess, targets, moves, left", [
    (40, [("spare", 100), ("n1", 100)], [("spare", 40)], 0),
    (40, [("spare", 25), ("n1", 10), ("n3", 100)], [("spare", 25), ("n1", 10), ("n3", 5)], 0),
    (40, [("spare", 10), ("n1", -3)], [("spare", 10)], 30),
    (40, [], [], 40),
    (0, [("spare", 10)], [], 0)])
def test_allocate(excess, targets, moves, left):
    assert c.allocate(excess, targets) == (moves, left)
