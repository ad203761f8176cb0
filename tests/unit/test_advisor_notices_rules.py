"""The pure rules of the advisor delay notices (include/advisor_notices/delays.py): late segments, cadence, ETA,
who is excluded, and the email checks that keep one bad address from aborting a batch."""
from __future__ import annotations

import datetime as dt

import pytest

from include.advisor_notices import delays
from include.core.config import IST

DAY = dt.date(2026, 12, 1)


def ist(hh: int, mm: int, ss: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, 1, hh, mm, ss, tzinfo=IST)


def seg(unsent: int, planned: int = 100, accepted: int | None = None, failed: int = 0, skipped: int = 0):
    accepted = planned - unsent - failed - skipped if accepted is None else accepted
    return delays.SegmentProgress("equity", planned, accepted, unsent, failed, skipped)


def test_the_slot_comes_from_the_fanout_schedule():
    assert delays.delivery_slot(DAY) == ist(6, 0)
    assert delays.delivery_slot(DAY, "30 7 * * *") == ist(7, 30)
    with pytest.raises(ValueError, match="not a fixed daily time"):
        delays.delivery_slot(DAY, "*/5 * * * *")


@pytest.mark.parametrize("now, progress, late", [
    (ist(6, 15), seg(10), False),              # exactly 15 min: not yet "more than 15"
    (ist(6, 15, 1), seg(10), True),            # just past
    (ist(6, 16), seg(0), False),               # everything accepted
    (ist(6, 16), seg(0, failed=5), False),     # failures are final outcomes, not a delay
    (ist(6, 16), seg(0, skipped=5), False),    # DNC / opted out: never to be sent
    (ist(6, 16), seg(1, failed=5), True),      # one row still on its way
    (ist(5, 59), seg(100), False),             # before the slot
    (ist(23, 0), seg(3), True),                # still unsent at night: still late
])
def test_a_segment_is_late_only_with_unsent_rows_past_the_threshold(now, progress, late):
    assert delays.is_late(progress, now, DAY, late_after_min=15) is late


def test_a_segment_from_another_day_is_measured_from_its_own_slot():
    assert not delays.is_late(seg(5), ist(6, 20), DAY + dt.timedelta(days=1), 15)


def test_progress_figures_that_do_not_add_up_are_refused():
    with pytest.raises(ValueError, match="'equity'.*exceed planned"):
        delays.SegmentProgress("equity", 10, 8, 5)
    with pytest.raises(ValueError, match="unsent is negative"):
        delays.SegmentProgress("equity", 10, 8, -1)


@pytest.mark.parametrize("last_seq, last_at, now, due, seq", [
    (None, None, ist(6, 16), True, 1),               # first notice at once
    (1, ist(6, 16), ist(6, 21), False, 1),           # 5 min later: no
    (1, ist(6, 16), ist(6, 24), False, 1),           # 8 min later: no
    (1, ist(6, 16), ist(6, 30), True, 2),            # 14 min: within the 60 s grace (runs drift a few seconds)
    (1, ist(6, 16), ist(6, 29, 59), False, 1),       # just short of the grace
    (1, ist(6, 16), ist(6, 31), True, 2),            # 15 min: the second notice
    (4, ist(7, 1), ist(7, 20), True, 5),             # numbering continues
])
def test_cadence_every_15_minutes_with_a_small_grace(last_seq, last_at, now, due, seq):
    d = delays.notice_due(now, last_seq, last_at, every_min=15, grace_s=60)
    assert (d.due, d.seq) == (due, seq)


@pytest.mark.parametrize("remaining, accepted, paused, basis, eta", [
    (600, 300, False, "send_rate", ist(6, 26)),       # 1 msg/s over 300 s: 600 s -> 06:26
    (601, 300, False, "send_rate", ist(6, 27)),       # rounded up to the minute
    (0, 300, False, "send_rate", ist(6, 16)),         # nothing left: now
    (600, 0, False, "stalled", None),                 # no accepted message in the window: no estimate
    (600, 300, True, "paused", None),                 # kill switch: no estimate, whatever the rate
])
def test_eta_from_remaining_rows_and_the_measured_rate(remaining, accepted, paused, basis, eta):
    e = delays.estimate_eta(ist(6, 16), remaining, accepted, 300, paused, every_min=15)
    assert (e.basis, e.eta_at) == (basis, eta)
    assert e.next_update_at == ist(6, 31)


@pytest.mark.parametrize("basis, eta_at, needle", [
    ("send_rate", ist(6, 26), "Expected by 06:26 IST (at the current send rate). Next update by 06:31 IST"),
    ("paused", None, "Sending is paused"),
    ("stalled", None, "has not resumed"),
])
def test_the_notice_says_which_eta_it_is(basis, eta_at, needle):
    phrase = delays.Eta(basis, eta_at, ist(6, 31)).phrase()
    assert needle in phrase
    assert "06:31" in phrase


def test_eta_refuses_bad_figures():
    with pytest.raises(ValueError, match="remaining"):
        delays.estimate_eta(ist(6, 16), -1, 0, 300, False, 15)
    with pytest.raises(ValueError, match="rate window"):
        delays.estimate_eta(ist(6, 16), 1, 0, 0, False, 15)
    with pytest.raises(ValueError, match="timezone-aware"):
        delays.estimate_eta(dt.datetime(2026, 12, 1, 6, 16), 1, 1, 300, False, 15)


def test_selection_never_includes_advisors_who_may_not_be_contacted():
    c = delays.Candidate
    cands = [c(1, "equity", "A", "a@x.in", True), c(2, "equity", "B", None, True),
             c(3, "equity", "DNC", "d@x.in", False),
             c(4, "equity", "D", "d4@x.in", True, 1, ist(6, 16)),       # notified 8 min ago
             c(5, "equity", "E", "e@x.in", True, 2, ist(6, 9))]         # notified 15 min ago
    sel = delays.select(cands, ist(6, 24), every_min=15, grace_s=60)
    assert [(x.advisor_id, seq) for x, seq in sel.due] == [(1, 1), (2, 1), (5, 3)]
    assert [x.advisor_id for x in sel.not_due] == [4]
    assert [x.advisor_id for x in sel.excluded] == [3]
    assert sel.affected_ids == {1, 2, 4, 5}


@pytest.mark.parametrize("address, ok", [
    ("advisor1@example.in", True), (" advisor1@example.in ", True), (None, False), ("", False),
    ("advisor1@", False), ("@example.in", False), ("a b@example.in", False), ("a@b@example.in", False),
    ("advisor1@localhost", False),
])
def test_email_addresses_are_checked_before_the_batch_insert(address, ok):
    assert delays.valid_email(address) is ok


def test_message_ids_are_deterministic_per_notice():
    a = delays.message_id(DAY, 12, 2, "advisor-notices.local")
    assert a == "<delay-notice-20261201-12-2@advisor-notices.local>"
    assert a == delays.message_id(DAY, 12, 2, "advisor-notices.local")
    assert a != delays.message_id(DAY, 12, 3, "advisor-notices.local")
