"""The adaptive bucket a sender paces itself with: backs off on 130429, recovers, never exceeds its ceiling."""
import pytest

from include.delivery.ratelimit import AdaptiveBucket


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_backs_off_on_throttling_and_recovers_to_the_ceiling():
    clock = Clock()
    b = AdaptiveBucket(100, clock)
    assert b.rate == 100
    b.throttled()
    assert b.rate == 90 and b.bucket.tokens == 0
    b.throttled()
    assert b.rate == 81
    clock.t += 1.0
    b._recover()
    assert b.rate == 91
    clock.t += 10.0
    b._recover()
    assert b.rate == 100  # never above the ceiling


def test_tokens_never_exceed_the_rate_over_time():
    clock = Clock()
    b = AdaptiveBucket(80, clock)
    taken = 0
    for _ in range(10_000):  # 10 s in 1 ms steps
        clock.t += 0.001
        while b.bucket.try_take():
            taken += 1
    assert taken <= 80 * 10 + b.bucket.capacity + 1


def test_a_new_share_applies_at_once_unless_recovering():
    clock = Clock()
    b = AdaptiveBucket(100, clock)
    b.set_ceiling(50)
    assert b.rate == 50
    b.throttled()
    b.set_ceiling(100)
    assert b.rate == 45 and b.ceiling == 100  # still recovering: keeps the lower rate


def test_take_hands_out_banked_tokens_in_batches_and_caps_the_bank():
    clock = Clock()
    b = AdaptiveBucket(1000, clock)
    assert b.take(1000) == int(1000 * AdaptiveBucket.BURST_S)  # starts with one burst window banked
    assert b.take(10) == 0 and 0 < b.wait_time() <= 0.001
    clock.t += 0.0105
    assert b.take(100) == 10  # 10.5 ms at 1,000/s; the half token stays banked
    clock.t += 5.0  # a loop that slept long catches up by at most the burst window, never 5 s of tokens
    assert b.take(10_000) == int(1000 * AdaptiveBucket.BURST_S)


def test_batch_pacing_never_exceeds_the_rate():
    clock = Clock()
    b = AdaptiveBucket(80, clock)
    taken = 0
    for _ in range(1000):  # 10 s in uneven wake-ups of 3..17 ms, as a busy event loop wakes
        clock.t += 0.003 + (_ % 8) * 0.002
        taken += b.take(50)
    elapsed = clock.t - 1000.0
    assert taken <= 80 * elapsed + b.bucket.capacity + 1
    assert taken >= 80 * elapsed - 2  # and loses nothing to coarse wake-ups


def test_take_after_throttling_waits_for_new_tokens():
    clock = Clock()
    b = AdaptiveBucket(100, clock)
    b.throttled()
    assert b.take(5) == 0
    clock.t += 0.045
    assert b.take(100) == 4  # 45 ms at the cut rate of 90/s


def test_one_bunch_of_130429s_cuts_the_rate_once():
    """Answers to requests started before the last cut were paced at the old rate: they do not cut again. A
    130429 for a request started after the cut does (a real excess still converges)."""
    clock = Clock()
    b = AdaptiveBucket(100, clock)
    bunch_sent_at = clock.t - 0.03
    assert b.throttled(bunch_sent_at) is True
    clock.t += 0.01
    assert [b.throttled(bunch_sent_at) for _ in range(29)] == [False] * 29
    assert b.rate == 90 and b.throttle_events == 30
    sent_after_cut = clock.t
    clock.t += 0.03
    assert b.throttled(sent_after_cut) is True and b.rate == 81
    assert b.throttled() is True and b.rate == pytest.approx(72.9)  # no start time known: every answer cuts
