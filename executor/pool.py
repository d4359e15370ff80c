"""WarmPool: hardened containers started ahead of time, so a new session's first command costs
about as much as a warm exec instead of a container start.

Each member is created exactly like a session container (same hardening, its own fresh volume)
and is handed to one session only, once; nothing runs in it before. A background thread keeps
the pool at its size, replaces members that died, and discards members of an old image. Members
carry the label `mcp-code-executor.pool=1`: a new process removes the unclaimed ones a crashed
process left, and shutdown removes its own.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings import ExecutorSettings

from .engines.base import ContainerRequest, Engine
from .errors import ExecutorError

logger = logging.getLogger(__name__)

POOL_LABEL = "mcp-code-executor.pool"


@dataclass(frozen=True)
class PoolMember:
    container_id: str
    name: str
    volume: str
    image_id: str
    runner: Any = None  # a RunnerChannel started ahead too, so the first command is fast


class WarmPool:
    """Up to `size` ready containers; claim() hands one out and triggers a refill."""

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
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.size = size
        self.labels = {**labels, POOL_LABEL: "1"}
        self._tools_path = tools_path
        self._skills_path = skills_path
        self._check_every_s = spec.pool_check_interval_s
        self._start_runner = start_runner
        self._members: deque[PoolMember] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self.created = 0  # for the doctor and benchmarks

    def start(self) -> None:
        if self.size <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="warm-pool", daemon=True)
        self._thread.start()

    def ready(self) -> int:
        with self._lock:
            return len(self._members)

    def claim(self, labels: dict[str, str] | None = None) -> PoolMember | None:
        """A ready container for a new session, or None when the pool is empty. With `labels`,
        the engine must confirm the claim (`Engine.claim`); a member another app process took
        is dropped (not removed: it is theirs now) and the next one is tried."""
        while True:
            with self._lock:
                member = self._members.popleft() if self._members else None
            self._wake.set()
            if member is None or labels is None:
                return member
            try:
                if self.engine.claim(member.container_id, labels):
                    return member
            except ExecutorError as exc:
                logger.warning("could not claim pool member %s: %s", member.name, exc)
            if member.runner is not None:
                member.runner.close()

    def _loop(self) -> None:
        while not self._closing.is_set():
            try:
                self._fill()
            except ExecutorError as exc:
                logger.warning("warm pool refill failed: %s", exc)
            self._wake.wait(self._check_every_s)
            self._wake.clear()

    def _fill(self) -> None:
        current_image = self.engine.image_id(self.spec.image_name)
        with self._lock:
            members = list(self._members)
        for member in members:  # drop members of an old image, or that died
            info = self.engine.inspect(member.container_id)
            healthy = (
                member.image_id == current_image
                and info is not None
                and info.running
                and not info.paused
            )
            if not healthy:
                with self._lock:
                    if member in self._members:
                        self._members.remove(member)
                self._discard(member)
                logger.info("discarded pool member %s", member.name)
        while not self._closing.is_set():
            with self._lock:
                if len(self._members) >= self.size:
                    return
            member = self._create(current_image)
            with self._lock:
                keep = not self._closing.is_set() and len(self._members) < self.size
                if keep:
                    self._members.append(member)
            if not keep:
                self._discard(member)

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
        with self._lock:
            members, self._members = list(self._members), deque()
        for member in members:
            self._discard(member)
