"""WarmPool: hardened containers started ahead of time, so a new session's first command costs
about as much as a warm command instead of a container start.

Each member is created exactly like a session container (same hardening, its own fresh volume)
with its runner and Python kernel already running, and is handed to one session only, once;
nothing of a session runs in it before. Members carry the label `mcp-code-executor.pool=1`: a
new process removes the unclaimed ones a crashed process left, and shutdown removes its own.

The pool learns from demand: its target is the number of sessions that arrived in the last
`window_s` (claims that found it empty count too), never below `floor`, never above `ceiling`
(a count and a memory budget). So after one crowd the next finds as many members ready; when
arrivals stop the target falls back and surplus members go. Members are made `parallel` at a
time, so refilling never takes the machine from running sessions.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings import ExecutorSettings

from .engines.base import ContainerRequest, Engine
from .errors import ExecutorError

logger = logging.getLogger(__name__)

POOL_LABEL = "mcp-code-executor.pool"
_ARRIVALS_PAUSE_S = 0.3  # a refill starts once no session has arrived for this long...
_YIELD_MAX_S = 10.0  # ...and their containers are made, waiting at most this long in all


@dataclass(frozen=True)
class PoolMember:
    container_id: str
    name: str
    volume: str
    image_id: str
    runner: Any = None  # a RunnerChannel started ahead too, so the first command is fast


class Demand:
    """When sessions arrived; the pool's target follows how many came in the last window."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._arrivals: deque[float] = deque()
        self._lock = threading.Lock()

    def arrived(self) -> None:
        with self._lock:
            self._arrivals.append(self._clock())

    def quiet_for(self) -> float:
        """Seconds since the latest arrival (infinite before the first)."""
        with self._lock:
            last = self._arrivals[-1] if self._arrivals else None
        return math.inf if last is None else self._clock() - last

    def recent(self) -> int:
        now = self._clock()
        with self._lock:
            while self._arrivals and now - self._arrivals[0] > self.window_s:
                self._arrivals.popleft()
            return len(self._arrivals)


def pool_target(floor: int, ceiling: int, recent_arrivals: int) -> int:
    """How many members to keep ready: as many as recently arrived, within [floor, ceiling]."""
    return max(floor, min(ceiling, recent_arrivals))


class WarmPool:
    """Ready containers; claim() hands one out and the pool refills to its target."""

    def __init__(
        self,
        engine: Engine,
        spec: ExecutorSettings,
        *,
        size: int,
        labels: dict[str, str],
        tools_path: Path | None,
        skills_path: Path | None,
        start_runner: Callable[[str], Any] | None = None,
        before_making: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.floor = size
        by_memory = spec.pool_memory_budget_bytes // max(1, spec.pool_member_memory_bytes)
        self.ceiling = max(size, min(spec.pool_max_size, by_memory))
        self.labels = {**labels, POOL_LABEL: "1"}
        self.demand = Demand(spec.pool_window_s, clock)
        self._tools_path = tools_path
        self._skills_path = skills_path
        self._check_every_s = spec.pool_check_interval_s
        self._start_runner = start_runner
        # Sessions come first: a refill amid a crowd takes the daemon from the people waiting.
        self._before_making = before_making
        self._members: deque[PoolMember] = deque()
        self._making = 0  # members being made right now
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._makers = ThreadPoolExecutor(
            max_workers=max(1, spec.pool_refill_parallel), thread_name_prefix="warm-pool-make"
        )
        self.created = 0  # for the doctor and benchmarks

    @property
    def size(self) -> int:
        """The current target."""
        return pool_target(self.floor, self.ceiling, self.demand.recent())

    def start(self) -> None:
        if self.floor <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="warm-pool", daemon=True)
        self._thread.start()

    def ready(self) -> int:
        with self._lock:
            return len(self._members)

    def claim(self, labels: dict[str, str] | None = None) -> PoolMember | None:
        """A ready container for a new session, or None when the pool is empty (the arrival
        counts either way). The engine confirms the claim: where several app processes share
        members (Kubernetes), a member another process took is dropped here and the next tried."""
        self.demand.arrived()
        try:
            while True:
                with self._lock:
                    member = self._members.popleft() if self._members else None
                if member is None or labels is None:
                    return member
                try:
                    if self.engine.claim(member.container_id, labels):
                        return member
                    logger.info("pool member %s was taken by another process", member.name)
                except ExecutorError as exc:
                    logger.warning("could not claim pool member %s: %s", member.name, exc)
                if member.runner is not None:
                    member.runner.close()  # the container is not ours (or not reachable) now
        finally:
            self._wake.set()

    def _loop(self) -> None:
        while not self._closing.is_set():
            try:
                self._tend()
            except ExecutorError as exc:
                logger.warning("warm pool refill failed: %s", exc)
            self._wake.wait(self._check_every_s)
            self._wake.clear()

    def _tend(self) -> None:
        """Drop dead or outdated members, shrink to the target, and start making what is
        missing (in the background, `pool_refill_parallel` at a time)."""
        current_image = self.engine.image_id(self.spec.image_name)
        with self._lock:
            members = list(self._members)
        for member in members:
            info = self.engine.inspect(member.container_id)
            healthy = (
                member.image_id == current_image
                and info is not None
                and info.running
                and not info.paused
            )
            if not healthy:
                self._drop(member, "dead or of an old image")
        target = self.size
        with self._lock:
            surplus = list(self._members)[target:]
            missing = target - len(self._members) - self._making
            self._making += max(0, missing)
        for member in surplus:  # demand fell: the oldest extra members go
            self._drop(member, "not needed now")
        for made in range(max(0, missing)):
            try:
                self._makers.submit(self._make_one, current_image)
            except RuntimeError:  # closing: the makers were shut down meanwhile
                with self._lock:
                    self._making -= max(0, missing) - made
                return

    def _drop(self, member: PoolMember, why: str) -> None:
        with self._lock:
            if member not in self._members:
                return
            self._members.remove(member)
        self._discard(member)
        logger.info("discarded pool member %s (%s)", member.name, why)

    def _make_one(self, image_id: str) -> None:
        try:
            if self._closing.is_set():
                return
            self._yield_to_sessions()
            if self._closing.is_set():
                return
            member = self._create(image_id)
            with self._lock:
                keep = not self._closing.is_set() and len(self._members) < self.size
                if keep:
                    self._members.append(member)
            if not keep:
                self._discard(member)
        except ExecutorError as exc:
            logger.warning("could not make a pool member: %s", exc)
        finally:
            with self._lock:
                self._making -= 1

    def _yield_to_sessions(self) -> None:
        """Wait (a bounded while) for arrivals to pause and their containers to be made: a crowd
        claims the ready members first, and members made amid it would slow everyone in it."""
        deadline = time.monotonic() + _YIELD_MAX_S
        while (wait := _ARRIVALS_PAUSE_S - self.demand.quiet_for()) > 0:
            if self._closing.wait(min(wait, max(0.0, deadline - time.monotonic()))):
                return
            if time.monotonic() >= deadline:
                return
        if self._before_making is not None:
            self._before_making()

    def _create(self, image_id: str) -> PoolMember:
        name = f"{self.spec.app_label}-pool-{uuid.uuid4().hex[:16]}"
        volume = f"{name}-workspace"
        self.engine.ensure_volume(volume, self.labels, self.spec.workspace_quota_bytes)
        request = ContainerRequest(
            name, volume, self.labels, self.spec, self._tools_path, self._skills_path
        )
        try:
            container_id = self.engine.create(request)
        except ExecutorError:
            self.engine.remove_volume(volume)
            raise
        self.created += 1
        runner = self._start_runner(container_id) if self._start_runner else None
        return PoolMember(container_id, name, volume, image_id, runner)

    def _discard(self, member: PoolMember) -> None:
        if member.runner is not None:
            member.runner.close()
        self.engine.remove(member.name)
        self.engine.remove_volume(member.volume)

    def close(self) -> None:
        """Stop refilling and remove every unclaimed member (containers and volumes)."""
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._makers.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            members, self._members = list(self._members), deque()
        for member in members:
            self._discard(member)
