"""Rate-limit primitives shared by the sandbox (enforcing limits) and the sender (respecting them)."""
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
