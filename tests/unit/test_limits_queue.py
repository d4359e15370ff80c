"""The fair queue and the token bucket of the per-user limits (asyncio, no Docker)."""

from __future__ import annotations

import asyncio
import time

import pytest

from executor import RateLimitedError
from executor.limits import UserLimits


async def test_calls_over_the_concurrency_limit_wait_their_turn_in_order():
    limits = UserLimits(per_minute=0, concurrent=2, live_sessions=0, queue_timeout_s=5)
    order: list[int] = []

    async def call(i: int) -> None:
        async with limits.execution("alice"):
            order.append(i)
            await asyncio.sleep(0.05)

    tasks = []
    for i in range(6):
        tasks.append(asyncio.create_task(call(i)))
        await asyncio.sleep(0)  # arrive in this order
    await asyncio.gather(*tasks)
    assert order == list(range(6))
    assert limits.waiting("alice") == 0


async def test_a_cancelled_waiter_leaves_the_queue_and_the_next_one_gets_the_slot():
    limits = UserLimits(per_minute=0, concurrent=1, live_sessions=0, queue_timeout_s=5)
    release = asyncio.Event()
    ran: list[str] = []

    async def call(name: str, hold: bool = False) -> None:
        async with limits.execution("bob"):
            ran.append(name)
            if hold:
                await release.wait()

    first = asyncio.create_task(call("first", hold=True))
    await asyncio.sleep(0.01)
    gives_up = asyncio.create_task(call("gives-up"))
    patient = asyncio.create_task(call("patient"))
    await asyncio.sleep(0.01)
    assert limits.waiting("bob") == 2
    gives_up.cancel()
    await asyncio.sleep(0.01)
    assert limits.waiting("bob") == 1
    release.set()
    await asyncio.gather(first, patient)
    assert ran == ["first", "patient"]
    with pytest.raises(asyncio.CancelledError):
        await gives_up


async def test_the_wait_is_bounded_and_other_users_do_not_queue():
    limits = UserLimits(per_minute=0, concurrent=1, live_sessions=0, queue_timeout_s=0.1)
    async with limits.execution("carol"):
        started = time.monotonic()
        with pytest.raises(RateLimitedError) as caught:
            async with limits.execution("carol"):
                pass
        assert 0.09 < time.monotonic() - started < 1
        assert caught.value.limit == "concurrent_executions"
        async with limits.execution("dave"):  # another user is not behind carol
            pass


async def test_the_token_bucket_allows_a_burst_then_paces_then_refuses_the_hopeless():
    limits = UserLimits(
        per_minute=600, burst=3, concurrent=0, live_sessions=0, queue_timeout_s=0.35
    )  # 10 tokens a second
    started = time.monotonic()
    for _ in range(3):
        async with limits.execution("erin"):
            pass
    assert time.monotonic() - started < 0.05  # the burst
    for _ in range(2):
        async with limits.execution("erin"):
            pass
    assert time.monotonic() - started > 0.15  # then one every 0.1 s

    async def one_more() -> None:
        async with limits.execution("erin"):
            pass

    waiting = [asyncio.create_task(one_more()) for _ in range(3)]  # queued for tokens
    await asyncio.sleep(0)
    with pytest.raises(RateLimitedError) as caught:  # would need 0.4 s: refused at once
        async with limits.execution("erin"):
            pass
    assert caught.value.retry_after_s >= 1
    await asyncio.gather(*waiting)
