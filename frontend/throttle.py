"""Login throttling: exponential back-off per user name and per client address.

Each failed login counts against two buckets, the user name and the client address. After
`max_failures` failures a bucket is locked for `base_delay_s`, doubling with every further
failure up to `max_delay_s`, counted from the last failure. `check()` answers the longer wait of
the two buckets; callers check *before* verifying a password, so a right password during a
lock-out waits too. A success clears both buckets of that user and address.

Trade-off: the per-user bucket lets a stranger delay a real user's login (at most `max_delay_s`
at a time); that is the price of stopping guesses spread over many addresses.

Memory is bounded: a bucket is forgotten `forget_after_s` after its last failure, and at most
`max_entries` buckets are kept (the least recently failed go first).

Not thread-safe: call it from one event loop (the login route does).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass
class _Bucket:
    failures: int
    last: float


class LoginThrottle:
    """Exponential back-off after repeated login failures; the clock is injectable for tests."""

    def __init__(
        self,
        *,
        max_failures: int = 5,
        base_delay_s: float = 1.0,
        max_delay_s: float = 15 * 60.0,
        forget_after_s: float = 24 * 3600.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.max_failures = max_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.forget_after_s = forget_after_s
        self.max_entries = max_entries
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()

    def _keys(self, user: str, addr: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("user", user), ("addr", addr)

    def _delay(self, failures: int) -> float:
        over = failures - self.max_failures
        if over < 0:
            return 0.0
        return min(self.max_delay_s, self.base_delay_s * 2.0 ** min(over, 64))

    def _wait(self, key: tuple[str, str], now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        if now - bucket.last >= self.forget_after_s:
            del self._buckets[key]
            return 0.0
        return max(0.0, bucket.last + self._delay(bucket.failures) - now)

    def check(self, user: str, addr: str) -> float:
        """Seconds to wait before this user may try again from this address (0 = go ahead)."""
        now = self._clock()
        return max(self._wait(key, now) for key in self._keys(user, addr))

    def record_failure(self, user: str, addr: str) -> float:
        """Count a failure; returns the wait it imposes from now on (0 = none yet)."""
        now = self._clock()
        for key in self._keys(user, addr):
            self._wait(key, now)  # forgets a stale bucket
            bucket = self._buckets.pop(key, None) or _Bucket(0, now)
            bucket.failures += 1
            bucket.last = now
            self._buckets[key] = bucket  # most recent at the end
        self._trim(now)
        return self.check(user, addr)

    def record_success(self, user: str, addr: str) -> None:
        for key in self._keys(user, addr):
            self._buckets.pop(key, None)

    def _trim(self, now: float) -> None:
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            stale = now - bucket.last >= self.forget_after_s
            if not stale and len(self._buckets) <= self.max_entries:
                break
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
