"""Per-user limits: a token bucket for the rate, a fair queue for concurrency, live sessions.

The user is the owner part of an executor key (see `keys.chat_key`). A call over a limit waits
its turn, first come first served, up to `queue_timeout_s`; only a call that could not start
within that bound gets `RateLimitedError` (which says which limit and when to retry), and a
caller that gives up waiting (cancels) leaves the queue. Nothing is run twice or lost.

- Rate: a bucket of `burst` tokens refilled at `per_minute / 60` a second; a token is reserved
  at arrival, so waiters are served in order.
- Concurrency: at most `concurrent` executions of one user at once; the next waiter takes the
  slot a finished execution frees.
- Live sessions: starting one more running container than allowed is refused (nothing to wait
  for: sessions end when a chat is closed or goes idle).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from .errors import RateLimitedError


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class UserLimits:
    """A limit of 0 means unlimited. Use from one event loop."""

    def __init__(
        self,
        *,
        per_minute: int,
        concurrent: int,
        live_sessions: int,
        burst: int = 0,
        queue_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.burst = burst or per_minute
        self.concurrent = concurrent
        self.live_sessions = live_sessions
        self.queue_timeout_s = queue_timeout_s
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._running: dict[str, int] = defaultdict(int)
        self._waiting: dict[str, deque[asyncio.Future[None]]] = defaultdict(deque)

    @asynccontextmanager
    async def execution(self, owner: str) -> AsyncIterator[None]:
        """Wait (bounded) until `owner` may run one more execution; hold it while it runs."""
        await self._take_token(owner)
        await self._take_slot(owner)
        try:
            yield
        finally:
            self._give_slot(owner)

    def waiting(self, owner: str) -> int:
        """How many calls of `owner` are queued for a concurrency slot."""
        return sum(1 for f in self._waiting.get(owner, ()) if not f.done())

    # -- rate --------------------------------------------------------------------------------

    async def _take_token(self, owner: str) -> None:
        if not self.per_minute:
            return
        rate = self.per_minute / 60.0
        now = self._clock()
        bucket = self._buckets.setdefault(owner, _Bucket(float(self.burst), now))
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        bucket.tokens -= 1  # reserved now, so later arrivals queue behind this one
        wait = -bucket.tokens / rate if bucket.tokens < 0 else 0.0
        if wait > self.queue_timeout_s:
            bucket.tokens += 1
            raise RateLimitedError(
                f"limit reached: {self.per_minute} executions per minute for this user (bursts "
                f"of {self.burst}); retry in {math.ceil(wait)} s",
                limit="executions_per_minute",
                retry_after_s=math.ceil(wait),
            )
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                bucket.tokens += 1  # give the reservation back
                raise

    # -- concurrency -------------------------------------------------------------------------

    async def _take_slot(self, owner: str) -> None:
        if not self.concurrent:
            return
        queue = self._waiting[owner]
        if self._running[owner] < self.concurrent and not any(not f.done() for f in queue):
            self._running[owner] += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            async with asyncio.timeout(self.queue_timeout_s):
                await asyncio.shield(turn)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if turn.done() and not turn.cancelled():
                self._give_slot(owner)  # the slot arrived as we gave up: pass it on
            else:
                turn.cancel()
            self._forget(owner, turn)
            if isinstance(exc, TimeoutError):
                raise RateLimitedError(
                    f"limit reached: {self.concurrent} executions at once for this user, and "
                    f"none finished within {self.queue_timeout_s:g} s; retry later",
                    limit="concurrent_executions",
                    retry_after_s=self.queue_timeout_s,
                ) from None
            raise
        self._forget(owner, turn)

    def _give_slot(self, owner: str) -> None:
        if not self.concurrent:
            return
        queue = self._waiting[owner]
        while queue:
            turn = queue.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes straight to the next in line
                return
        self._running[owner] -= 1
        if not self._running[owner]:
            del self._running[owner]
            self._waiting.pop(owner, None)

    def _forget(self, owner: str, turn: asyncio.Future[None]) -> None:
        queue = self._waiting.get(owner)
        if queue is not None and turn in queue:
            queue.remove(turn)

    # -- sessions ----------------------------------------------------------------------------

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
