"""The adaptive bucket a sender paces itself with: backs off on 130429, recovers, never exceeds its ceiling."""
from include.ratelimit import AdaptiveBucket


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
