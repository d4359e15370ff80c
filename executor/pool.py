"""WarmPool: hardened containers started ahead of time, so a new session's first command costs
about as much as a warm exec instead of a container start.

Each member is created exactly like a session container (same hardening, its own fresh volume)
and is handed to one session only, once; nothing runs in it before. A background thread keeps
the pool at its size, replaces members that died, and discards members of an old image. Members
carry the label `mcp-code-executor.pool=1`: a new process removes the unclaimed ones a crashed
process left, and shutdown removes its own.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker.errors

import docker

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
        client: docker.DockerClient,
        *,
        size: int,
        app_label: str,
        labels: dict[str, str],
        container_kwargs: Callable[[str, str], dict[str, Any]],
        image_id: Callable[[], str],
        check_every_s: float = 10.0,
        start_runner: Callable[[str], Any] | None = None,
    ) -> None:
        self.client = client
        self.size = size
        self.app_label = app_label
        self.labels = {**labels, POOL_LABEL: "1"}
        self._container_kwargs = container_kwargs
        self._image_id = image_id
        self._check_every_s = check_every_s
        self._start_runner = start_runner
        self._members: deque[PoolMember] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self.created = 0  # for tests and the doctor

    def start(self) -> None:
        if self.size <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="warm-pool", daemon=True)
        self._thread.start()

    def ready(self) -> int:
        with self._lock:
            return len(self._members)

    def claim(self) -> PoolMember | None:
        """A ready container for a new session, or None when the pool is empty."""
        with self._lock:
            member = self._members.popleft() if self._members else None
        self._wake.set()
        return member

    def _loop(self) -> None:
        while not self._closing.is_set():
            try:
                self._fill()
            except docker.errors.DockerException as exc:
                logger.warning("warm pool refill failed: %s", exc)
            self._wake.wait(self._check_every_s)
            self._wake.clear()

    def _fill(self) -> None:
        current_image = self._image_id()
        with self._lock:
            members = list(self._members)
        for member in members:  # drop members of an old image, or that died
            healthy = member.image_id == current_image and self._running(member)
            if not healthy:
                with self._lock:
                    if member in self._members:
                        self._members.remove(member)
                if member.runner is not None:
                    member.runner.close()
                self._remove(member.name, member.volume)
                logger.info("discarded pool member %s", member.name)
        while not self._closing.is_set():
            with self._lock:
                if len(self._members) >= self.size:
                    return
            member = self._create(current_image)
            with self._lock:
                if self._closing.is_set() or len(self._members) >= self.size:
                    surplus = member
                else:
                    self._members.append(member)
                    surplus = None
            if surplus is not None:
                self._remove(surplus.name, surplus.volume)

    def _running(self, member: PoolMember) -> bool:
        try:
            state = self.client.api.inspect_container(member.container_id)["State"]
        except docker.errors.NotFound:
            return False
        return bool(state.get("Running")) and not state.get("Paused")

    def _create(self, image_id: str) -> PoolMember:
        name = f"{self.app_label}-pool-{uuid.uuid4().hex[:16]}"
        volume = f"{name}-workspace"
        self.client.volumes.create(name=volume, labels=self.labels)
        try:
            container = self.client.containers.run(**self._container_kwargs(name, volume))
        except docker.errors.APIError:
            self._remove(name, volume)
            raise
        self.created += 1
        runner = self._start_runner(container.id) if self._start_runner else None
        return PoolMember(container.id, name, volume, image_id, runner)

    def _remove(self, name: str, volume: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.client.api.remove_container(name, force=True)
        with contextlib.suppress(docker.errors.NotFound):
            self.client.api.remove_volume(volume, force=True)

    def close(self) -> None:
        """Stop refilling and remove every unclaimed member (containers and volumes)."""
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            members, self._members = list(self._members), deque()
        for member in members:
            if member.runner is not None:
                member.runner.close()
            self._remove(member.name, member.volume)
