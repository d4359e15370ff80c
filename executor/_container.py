"""One session's container on the engine: made on first use, started again when found stopped,
recreated on the same workspace when it was removed or runs an old image."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from settings import ExecutorSettings

from .engines.base import ContainerRequest, Engine, ExecChannel
from .errors import (
    ContainerConflictError,
    ContainerNotFoundError,
    EngineError,
    SandboxStartError,
)

logger = logging.getLogger(__name__)

# A bash-builtin loop: no fork needed, so it works even at the pids limit.
KILL_ALL = "for _ in 1 2 3 4 5 6 7 8 9 10 11 12; do kill -9 -1 2>/dev/null || exit 0; done"


class SandboxContainer:
    """The container and workspace volume of one executor key."""

    def __init__(
        self,
        engine: Engine,
        spec: ExecutorSettings,
        *,
        key: str,
        name: str,
        volume: str,
        labels: dict[str, str],
        tools_path: Path | None,
        skills_path: Path | None,
        container_id: str | None = None,
        claim: Callable[[SandboxContainer], bool] | None = None,
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.key = key
        self.name = name
        self.volume = volume
        self.labels = labels
        self.tools_path = tools_path
        self.skills_path = skills_path
        self.id = container_id
        self.running = False
        self.stopped_idle = False  # stopped by the idle reaper; started again on next use
        self.claim = claim  # takes a warm-pool container for a session that has none yet

    @property
    def ref(self) -> str:
        return self.id or self.name

    def is_live(self) -> bool:
        return self.running and not self.stopped_idle

    def attach(self, *, name: str, volume: str, container_id: str) -> None:
        """Make an existing container (a claimed pool member) this session's."""
        self.name, self.volume, self.id = name, volume, container_id

    def ensure_running(self) -> str:
        """The container's id, after creating or starting it if needed."""
        if self.id and self.running:
            return self.id
        claim, self.claim = self.claim, None  # a session claims at most once, ever
        # A session new since the start-up sweep has no container yet (the sweep adopted every
        # existing one), so a pooled container can be taken without asking the engine first.
        if claim is not None and self.id is None and claim(self):
            self.running, self.stopped_idle = True, False
            assert self.id is not None
            return self.id
        # First the workspace: it must exist and (loop quotas) mount its own image. After a
        # reboot this may remove a stopped container, which is then made again below.
        self.engine.ensure_volume(self.volume, self.labels, self.spec.workspace_quota_bytes)
        info = self.engine.inspect(self.name)
        image_id = self.engine.image_id(self.spec.image_name)
        if info is not None and info.image_id != image_id:
            logger.info("sandbox %s runs an old image; recreating it (workspace kept)", self.name)
            self.engine.remove(info.id)
            info = None
        try:
            if info is None:
                self.id = self._create()
            else:
                self.id = info.id
                if info.paused or not info.running:
                    self.engine.start(info.id)
        except EngineError as exc:
            raise SandboxStartError(f"cannot start the sandbox for this session: {exc}") from exc
        self.running, self.stopped_idle = True, False
        return self.id

    def _create(self) -> str:
        request = ContainerRequest(
            self.name, self.volume, self.labels, self.spec, self.tools_path, self.skills_path
        )
        started = time.monotonic()
        try:
            container_id = self.engine.create(request)
        except ContainerConflictError:  # another process created it first: use theirs
            info = self.engine.inspect(self.name)
            if info is None:
                raise
            if not info.running:
                self.engine.start(info.id)
            return info.id
        logger.info("sandbox %s created in %.2fs", self.name, time.monotonic() - started)
        return container_id

    def open_exec(self, argv: list[str], *, stdin: bool) -> ExecChannel:
        """An exec in the running container; starts it again if it was stopped meanwhile."""
        for attempt in (1, 2):
            ref = self.ensure_running()
            try:
                return self.engine.open_exec(ref, argv, stdin=stdin)
            except ContainerNotFoundError:
                self.id, self.running = None, False  # removed from outside
            except ContainerConflictError as exc:  # stopped or paused meanwhile
                self.running = False
                if attempt == 2:
                    raise SandboxStartError(f"cannot run in the sandbox: {exc}") from exc
        raise SandboxStartError("the sandbox container disappeared twice in a row")

    def kill_all(self) -> None:
        """SIGKILL every process of the sandbox user from a detached exec (EngineError if it
        cannot start, e.g. exactly at the pids limit)."""
        self.engine.exec_detached(self.ensure_running(), ["bash", "-c", KILL_ALL])

    def died(self, wait_s: float = 1.0) -> bool:
        """Whether the container stopped (engines record it a moment after the exec ends)."""
        deadline = time.monotonic() + wait_s
        while True:
            info = self.engine.inspect(self.ref)
            if info is None or not info.running:
                self.running = False
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def stop(self) -> None:
        self.running = False
        if self.id is None:
            return
        try:
            self.engine.stop(self.id)
        except ContainerNotFoundError:
            self.id = None

    def remove(self, *, volume: bool = False) -> None:
        self.running = False
        self.engine.remove(self.ref)
        self.id = None
        if volume:
            self.engine.remove_volume(self.volume)

    def restart(self) -> None:
        """Kill and start the container: the last resort to stop runaway processes."""
        self.running = False
        try:
            self.engine.kill(self.ref)
        except ContainerNotFoundError:
            self.id = None
        self.ensure_running()
