"""Per-connection token bucket: a burst allowance refilled at a steady rate.

Why per connection: one noisy client must only slow itself down, never the
host's other clients.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    def take(self, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if available; False means the caller is over its rate."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def available(self, cost: float = 1.0) -> bool:
        """Could ``cost`` be spent now (without spending it)?"""
        self._refill()
        return self._tokens >= cost

    def spend(self, cost: float) -> None:
        """Spend ``cost`` even if that goes into debt (work already done, e.g. a page
        read); :meth:`retry_after` then says how long until the debt is paid."""
        self._refill()
        self._tokens -= cost

    def retry_after(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens will be available."""
        missing = cost - self._tokens
        return max(0.0, missing / self.rate) if self.rate > 0 else float("inf")
