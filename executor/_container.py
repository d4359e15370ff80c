"""One session's container on the engine: made on first use, started again when found stopped,
recreated on the same workspace when it was removed or runs an old image."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
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


class Creations:
    """The containers this executor is creating right now, and how many may be at once.

    A crowd of new sessions is served fastest a few at a time: the daemon creating 30 containers
    at once finishes them all at about the same late moment, while `at_once` in flight finish
    in waves, so most people start sooner (measured: p50 of 30 at once 0.8x bare Docker's with
    6 at once, 1.2x with no bound). Background work (runner warm-ups) waits for a quiet moment
    instead of competing with the crowd."""

    def __init__(self, at_once: int) -> None:
        self._count = 0
        self._lock = threading.Lock()
        self._quiet = threading.Condition(self._lock)
        self._slots = threading.BoundedSemaphore(at_once)
        self._warm_slots = threading.BoundedSemaphore(max(1, at_once // 4))

    def __enter__(self) -> bool:
        """Count one creation; True when others are under way too (a crowd)."""
        with self._lock:
            self._count += 1
            crowded = self._count > 1
        self._slots.acquire()
        return crowded

    def __exit__(self, *exc: object) -> None:
        self._slots.release()
        with self._lock:
            self._count -= 1
            if not self._count:
                self._quiet.notify_all()

    @contextlib.contextmanager
    def warming(self) -> Iterator[None]:
        """A slot for starting a runner ahead: a few at a time, so the sessions already at work
        keep the CPU."""
        with self._warm_slots:
            yield

    def wait_quiet(self, timeout_s: float) -> None:
        """Return once no creation is under way, or after `timeout_s` whatever the state."""
        with self._lock:
            self._quiet.wait_for(lambda: self._count == 0, timeout=timeout_s)


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
        new: bool = False,
        creations: Creations | None = None,
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
        # No container of this key existed when the app started (nor since): creating one
        # needs no look-up first. `fresh`: the container was just made amid a crowd of others,
        # so its first command skips starting the runner (which warms up once it is quiet).
        self.new = new
        self.creations = creations or Creations(at_once=8)
        self.fresh = False
        self.crowded = False
        self.starts = 0  # times it was found stopped or new and made to run (tmpfs emptied)

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
            self.starts += 1
            assert self.id is not None
            return self.id
        # First the workspace: it must exist and (loop quotas) mount its own image. After a
        # reboot this may remove a stopped container, which is then made again below.
        self.engine.ensure_volume(self.volume, self.labels, self.spec.workspace_quota_bytes)
        new, self.new = self.new, False
        info = None if new else self.engine.inspect(self.name)  # a 409 on create still tells
        if info is not None and info.image_id != self.engine.image_id(self.spec.image_name):
            logger.info("sandbox %s runs an old image; recreating it (workspace kept)", self.name)
            self.engine.remove(info.id)
            info = None
        try:
            if info is None:
                self.id = self._create()
                self.fresh = self.crowded
            else:
                self.id = info.id
                if info.paused or not info.running:
                    self.engine.start(info.id)
        except EngineError as exc:
            raise SandboxStartError(f"cannot start the sandbox for this session: {exc}") from exc
        self.running, self.stopped_idle = True, False
        self.starts += 1
        return self.id

    def _create(self) -> str:
        request = ContainerRequest(
            self.name, self.volume, self.labels, self.spec, self.tools_path, self.skills_path
        )
        started = time.monotonic()
        try:
            with self.creations as crowded:
                container_id = self.engine.create(request)
            self.crowded = crowded
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
