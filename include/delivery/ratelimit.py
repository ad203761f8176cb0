"""Rate limiting, one home: the token bucket the sender obeys (and the sandbox enforces), its adaptive
variant that backs off on 130429 and recovers, and a rolling unique-recipient counter."""
from __future__ import annotations

import time
from collections import deque


class TokenBucket:
    """Classic token bucket: `rate` tokens per second, at most `capacity` banked."""

    __slots__ = ("rate", "capacity", "tokens", "stamp", "_clock")

    def __init__(self, rate: float, capacity: float | None = None, clock=time.monotonic):
        if rate <= 0:
            raise ValueError(f"token bucket rate must be positive, got {rate}")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate))
        self.tokens = self.capacity
        self._clock = clock
        self.stamp = clock()

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def try_take(self, n: float = 1.0) -> bool:
        self._refill(self._clock())
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def wait_time(self, n: float = 1.0) -> float:
        """Seconds until `n` tokens are available (0 when they already are)."""
        self._refill(self._clock())
        return 0.0 if self.tokens >= n else (n - self.tokens) / self.rate

    def set_rate(self, rate: float, capacity: float | None = None) -> None:
        self._refill(self._clock())
        self.rate = float(rate)
        if capacity is not None:
            self.capacity = float(capacity)
            self.tokens = min(self.tokens, self.capacity)


class RollingUniqueCounter:
    """Unique keys seen in a rolling window (WhatsApp's 24 h portfolio messaging limit)."""

    def __init__(self, window_s: float = 86_400.0, clock=time.time):
        self.window_s = window_s
        self._clock = clock
        self._last_seen: dict[str, float] = {}
        self._order: deque[tuple[float, str]] = deque()

    def _prune(self, now: float) -> None:
        cutoff = now - self.window_s
        while self._order and self._order[0][0] <= cutoff:
            ts, key = self._order.popleft()
            if self._last_seen.get(key) == ts:
                del self._last_seen[key]

    def __contains__(self, key: str) -> bool:
        self._prune(self._clock())
        return key in self._last_seen

    def count(self) -> int:
        self._prune(self._clock())
        return len(self._last_seen)

    def add(self, key: str) -> None:
        now = self._clock()
        self._prune(now)
        self._last_seen[key] = now
        self._order.append((now, key))


class AdaptiveBucket:
    """A sender's share of a number's throughput. `throttled()` (a 130429) cuts the rate by 10%; it then
    recovers by 10% of the ceiling per second without throttling. Senders already aim under the limit,
    so a 130429 mostly means requests bunched on the way, not a rate that is too high; a real excess
    still converges within a few 130429s. (Measured at 5 x 80/s, 100k: halving 0.90 of the ceiling with
    113 throttles, -10% 0.96 with 33.)

    The sender paces in batches: `take(n)` hands out what is banked, `wait_time()` says when the next
    token is due. Up to BURST_S seconds of tokens are banked, so a pacing loop woken a little late (two
    cores shared with PostgreSQL and other senders) catches up instead of losing those tokens; that is
    far inside the burst WhatsApp (and the sandbox, 0.2 s) absorbs."""

    BURST_S = 0.05

    def __init__(self, ceiling: float, clock=time.monotonic):
        self.ceiling = float(ceiling)
        self._clock = clock
        self.bucket = TokenBucket(ceiling, self._capacity(ceiling), clock)
        self._last_recover = clock()
        self._last_cut = float("-inf")
        self.throttle_events = 0

    @classmethod
    def _capacity(cls, rate: float) -> float:
        return max(1.0, rate * cls.BURST_S)

    @property
    def rate(self) -> float:
        return self.bucket.rate

    def set_ceiling(self, ceiling: float) -> None:
        """A new share of the number (senders joined or left). A bucket still recovering from
        throttling keeps its lower rate; otherwise it runs at the new ceiling at once."""
        ceiling = max(0.5, float(ceiling))
        if abs(ceiling - self.ceiling) <= 1e-9:
            return
        recovering = self.bucket.rate < self.ceiling * 0.999 and self.throttle_events > 0
        self.ceiling = ceiling
        self.bucket.set_rate(min(self.bucket.rate, ceiling) if recovering else ceiling, self._capacity(ceiling))

    def throttled(self, sent_at: float | None = None) -> bool:
        """A 130429 for a request started at `sent_at` (this bucket's clock). One cut per round trip, as TCP
        reacts to loss: a request started before the last cut was paced at the old rate, so its 130429 says
        nothing about the new one. Without this, one bunch of 30 answers cut the rate to 0.9^30 = 4% and a
        10k run fell to 0.71 of the ceiling. Returns whether the rate was cut."""
        self.throttle_events += 1
        if sent_at is not None and sent_at < self._last_cut:
            return False
        self.bucket.set_rate(max(0.5, self.bucket.rate * 0.9))
        self.bucket.tokens = 0.0
        self._last_recover = self._last_cut = self._clock()
        return True

    def _recover(self) -> None:
        now = self._clock()
        if self.bucket.rate < self.ceiling and now - self._last_recover >= 1.0:
            steps = int(now - self._last_recover)
            self.bucket.set_rate(min(self.ceiling, self.bucket.rate + 0.1 * self.ceiling * steps))
            self._last_recover = now

    def take(self, n: int) -> int:
        """Take up to `n` whole tokens that are available now; returns how many were taken."""
        self._recover()
        b = self.bucket
        b._refill(self._clock())
        got = min(int(n), int(b.tokens))
        if got > 0:
            b.tokens -= got
        return max(0, got)

    def wait_time(self) -> float:
        """Seconds until the next whole token."""
        self._recover()
        return self.bucket.wait_time()
