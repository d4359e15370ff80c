"""Per-user limits: executions per minute, concurrent executions, live sessions.

The user is the owner part of an executor key (see `keys.chat_key`). Over a limit the caller
gets `RateLimitedError`, which says which limit and when to retry; nothing is run or lost.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import RateLimitedError

_WINDOW_S = 60.0


class UserLimits:
    """Thread-safe counters; a limit of 0 means unlimited."""

    def __init__(self, *, per_minute: int, concurrent: int, live_sessions: int) -> None:
        self.per_minute = per_minute
        self.concurrent = concurrent
        self.live_sessions = live_sessions
        self._lock = threading.Lock()
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._running: dict[str, int] = defaultdict(int)

    @contextmanager
    def execution(self, owner: str) -> Iterator[None]:
        """Count one execution for `owner` while it runs; refuse it if over a limit."""
        now = time.monotonic()
        with self._lock:
            recent = self._recent[owner]
            while recent and now - recent[0] >= _WINDOW_S:
                recent.popleft()
            if self.per_minute and len(recent) >= self.per_minute:
                wait = math.ceil(_WINDOW_S - (now - recent[0]))
                raise RateLimitedError(
                    f"limit reached: {self.per_minute} executions per minute for this user; "
                    f"retry in {wait} s",
                    limit="executions_per_minute",
                    retry_after_s=wait,
                )
            if self.concurrent and self._running[owner] >= self.concurrent:
                raise RateLimitedError(
                    f"limit reached: {self.concurrent} executions at once for this user; retry "
                    "when one of them finishes",
                    limit="concurrent_executions",
                    retry_after_s=1,
                )
            recent.append(now)
            self._running[owner] += 1
        try:
            yield
        finally:
            with self._lock:
                self._running[owner] -= 1

    def check_session(
        self, owner: str, key: str, live_keys: set[str], idle_timeout_s: float
    ) -> None:
        """Refuse to start one more live session for `owner` beyond the limit."""
        if not self.live_sessions or key in live_keys or len(live_keys) < self.live_sessions:
            return
        raise RateLimitedError(
            f"limit reached: {self.live_sessions} live sessions for this user; close a chat, or "
            f"retry after an idle one is stopped (after {idle_timeout_s:g} s idle)",
            limit="live_sessions",
            retry_after_s=idle_timeout_s,
        )
