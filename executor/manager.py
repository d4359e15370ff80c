"""SandboxManager: key -> Sandbox. Names, labels, adoption of leftovers, idle reaping, cleanup.

A key can be any string. It never reaches the engine as such: the container and volume names are
a readable slug plus a hash of the whole key, so names are safe, deterministic and distinct.
Everything this app creates carries the label `mcp-code-executor.app=<app_label>`, which is how a
new process finds (and adopts or removes) what an earlier one left, and how cleanup finds it all.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from settings import ExecutorSettings

from ._container import Creations, SandboxContainer
from ._registry import WorkspaceRegistry
from ._retention import LastUse, expired
from ._runner_slot import runner_ahead
from .bridge.session import BridgeServices
from .engines.base import Engine
from .errors import ContainerNotFoundError, EngineError, ExecutorError
from .image_inputs import LOCAL_BASE_REPO, status_from_labels
from .keys import split_key
from .pool import POOL_LABEL, PoolMember, WarmPool
from .results import Inventory, PoolStatus, SandboxInfo
from .runner import RunnerChannel
from .sandbox import Sandbox

logger = logging.getLogger(__name__)

APP_LABEL = "mcp-code-executor.app"
SESSION_LABEL = "mcp-code-executor.session"
USER_LABEL = "mcp-code-executor.user"
_SLUG_RE = re.compile(r"[^a-z0-9]+")
_RETENTION_EVERY_S = 3600.0
_POOL_YIELD_S = 10.0  # a refill waits at most this long for session creations to pass


def session_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def container_name(app_label: str, key: str) -> str:
    """Deterministic, engine-safe name: `<app>-<slug>-<hash of the whole key>`."""
    slug = _SLUG_RE.sub("-", key.lower()).strip("-")[:24].strip("-") or "session"
    return f"{app_label}-{slug}-{session_key(key)}"


class SandboxManager:
    """Owns every Sandbox of one app instance; thread-safe."""

    def __init__(
        self,
        engine: Engine,
        spec: ExecutorSettings,
        *,
        tools_path: Path | None,
        skills_path: Path | None,
        exec_word: str = "docker exec",
        services: BridgeServices | None = None,
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.tools_path = tools_path
        self.skills_path = skills_path
        self.exec_word = exec_word
        self.services = services  # code mode and egress, shared by every sandbox
        self._sandboxes: dict[str, Sandbox] = {}
        self._lock = threading.Lock()
        self.creations = Creations(
            spec.max_parallel_starts or max(4, min(32, 4 * (os.cpu_count() or 1)))
        )
        self._started = False
        self._closing = threading.Event()
        self._reaper: threading.Thread | None = None
        self.pool: WarmPool | None = None
        self._volumes_at_start: set[str] = set()
        self.registry = WorkspaceRegistry(
            spec.state_dir / f"{spec.app_label}-workspaces.json" if spec.state_dir else None
        )
        self.last_use = LastUse(
            spec.state_dir / f"{spec.app_label}-last-use.json" if spec.state_dir else None
        )
        self.on_retention: Callable[[str, str], None] | None = None  # (key, volume) deleted
        self._retention_due = 0.0

    @property
    def started(self) -> bool:
        return self._started

    @property
    def app_labels(self) -> dict[str, str]:
        return {APP_LABEL: self.spec.app_label}

    # -- start-up ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, check the image, adopt or remove leftovers, start the reaper. Idempotent."""
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            self.engine.ping()
            image_id = self.engine.image_id(self.spec.image_name)
            logger.info("workspaces: %s", self.engine.workspace_quota())
            self.engine.prepare_workspaces(self.spec.workspace_quota_bytes)
            self._sweep(image_id)
            if self._reaper is None:
                self._reaper = threading.Thread(
                    target=self._reap_loop, name="sandbox-reaper", daemon=True
                )
                self._reaper.start()
            if self.spec.pool_size > 0:
                self.pool = WarmPool(
                    self.engine,
                    self.spec,
                    size=self.spec.pool_size,
                    labels=self.app_labels,
                    tools_path=self.tools_path,
                    skills_path=self.skills_path,
                    start_runner=self._pool_runner if self.spec.use_runner else None,
                    before_making=lambda: self.creations.wait_quiet(timeout_s=_POOL_YIELD_S),
                )
                self.pool.start()
            self._started = True

    def _labels(self, key: str) -> dict[str, str]:
        return {**self.app_labels, SESSION_LABEL: session_key(key), USER_LABEL: key[:1024]}

    def _sweep(self, image_id: str) -> None:
        """Adopt this app's containers from an earlier process; remove those of an old image
        and unclaimed pool members (with their volumes)."""
        claimed = self.registry.names()
        for info in self.engine.list(self.app_labels):
            pooled = info.labels.get(POOL_LABEL) == "1"
            key = (
                self.registry.key_of_container(info.name) if pooled else info.labels.get(USER_LABEL)
            )
            if info.image_id != image_id or key is None:
                logger.info("removing leftover sandbox %s", info.name)
                self.engine.remove(info.id)
                continue
            if not pooled and container_name(self.spec.app_label, key) != info.name:
                continue  # the label could not hold the key exactly; found by name on next use
            self._sandboxes[key] = self._new_sandbox(key, container_id=info.id)
            logger.info("adopted sandbox %s (%s)", info.name, info.status)
        # A session with a volume here keeps it: it must not take a pooled container.
        self._volumes_at_start = {v.name for v in self.engine.list_volumes(self.app_labels)}
        for volume in self.engine.list_volumes({**self.app_labels, POOL_LABEL: "1"}):
            if volume.name not in claimed:
                try:
                    self.engine.remove_volume(volume.name)
                except EngineError as exc:  # still mounted by a container going away
                    logger.warning("could not remove leftover pool volume %s: %s", volume.name, exc)

    def _new_sandbox(self, key: str, container_id: str | None = None) -> Sandbox:
        registered = self.registry.get(key)
        default = container_name(self.spec.app_label, key)
        name, volume = registered or (default, f"{default}-workspace")
        container = SandboxContainer(
            self.engine,
            self.spec,
            key=key,
            name=name,
            volume=volume,
            labels=self._labels(key),
            tools_path=self.tools_path,
            skills_path=self.skills_path,
            container_id=container_id,
            creations=self.creations,
        )
        sandbox = Sandbox(container, self.spec, self.exec_word, self.services)
        if not registered:
            container.claim = lambda c: self._claim(sandbox, c)
        container.new = (
            container_id is None and not registered and volume not in self._volumes_at_start
        )
        return sandbox

    def _pool_runner(self, container_id: str) -> RunnerChannel | None:
        proxy = self.services is not None and self.services.allowlist.enabled
        return runner_ahead(self.engine, self.spec, container_id, proxy=proxy)

    def _claim(self, sandbox: Sandbox, container: SandboxContainer) -> bool:
        """Give a new session a warm-pool container (recorded, so its volume is found again)."""
        if self.pool is None or container.volume in self._volumes_at_start:
            return False
        member: PoolMember | None = self.pool.claim(container.labels)
        if member is None:
            return False
        self.registry.set(container.key, member.name, member.volume)
        container.attach(name=member.name, volume=member.volume, container_id=member.container_id)
        sandbox.slot.adopt(member.runner)
        logger.info("session took pool member %s", member.name)
        return True

    # -- sessions ------------------------------------------------------------------------

    def get(self, key: str) -> Sandbox:
        """The key's Sandbox (its container is made on first use)."""
        self.start()
        with self._lock:
            sandbox = self._sandboxes.get(key)
            if sandbox is None:
                sandbox = self._sandboxes[key] = self._new_sandbox(key)
            return sandbox

    def info(self, key: str) -> SandboxInfo:
        sandbox = self.get(key)
        container = sandbox.container
        return SandboxInfo(
            key,
            container.name,
            container.volume,
            container.is_live(),
            sandbox.slot.pid,
            sandbox.last_used,
        )

    def live_keys(self, owner: str) -> set[str]:
        """Keys of `owner` whose containers are running now."""
        with self._lock:
            return {
                key
                for key, sandbox in self._sandboxes.items()
                if sandbox.container.is_live() and split_key(key)[0] == owner
            }

    def stop(self, key: str) -> None:
        with self._lock:
            sandbox = self._sandboxes.get(key)
        (sandbox or self.get(key)).stop()

    def stop_all(self) -> None:
        """Stop every running container of this process's sessions (files kept)."""
        with self._lock:
            sandboxes = list(self._sandboxes.values())
        for sandbox in sandboxes:
            if sandbox.container.running:
                try:
                    sandbox.stop()
                except ExecutorError as exc:
                    logger.warning("could not stop %s: %s", sandbox.container.name, exc)

    def remove(self, key: str) -> None:
        """Remove the key's container; its workspace stays (the next use makes a container)."""
        self.start()
        with self._lock:
            sandbox = self._sandboxes.pop(key, None) or self._new_sandbox(key)
        sandbox.remove(volume=False)

    def delete(self, key: str) -> str:
        """Delete the key's container and workspace, and every record of them (the warm pool's
        registry, the last use): nothing of the session is left. Returns the volume deleted."""
        self.start()
        with self._lock:
            sandbox = self._sandboxes.pop(key, None) or self._new_sandbox(key)
        sandbox.remove(volume=True)
        self._forget_workspace(key, sandbox.container.volume)
        return sandbox.container.volume

    def _forget_workspace(self, key: str | None, volume: str) -> None:
        """Drop what this manager keeps about a deleted workspace, so that a new session under
        the same key is new in every way (it may take a pooled container again)."""
        if key:
            self.registry.drop(key)
        self.last_use.forget(volume)
        self.last_use.save()
        self._volumes_at_start.discard(volume)

    def remove_all(self, *, volumes: bool = False) -> list[tuple[str, str]]:
        """Remove every container (and volume, when asked) with this app's label. Works
        without the image and without starting (no adoption, no pool). Returns the (key,
        volume) of each workspace deleted (the key is "" for an unclaimed pool member's)."""
        self.engine.ping()
        if self.pool is not None:
            self.pool.close()  # its members go too; a later start() makes a new pool
            self.pool = None
            self._started = False
        self._forget_sessions("the sandbox was removed")
        for info in self.engine.list(self.app_labels):
            self.engine.remove(info.id)
        deleted: list[tuple[str, str]] = []
        if volumes:
            for volume in self.engine.list_volumes(self.app_labels):
                with contextlib.suppress(ContainerNotFoundError):
                    self.engine.remove_volume(volume.name)
                    key, _ = self._owner_of(volume.name, volume.labels)  # before the clear
                    deleted.append((key, volume.name))
                    self.last_use.forget(volume.name)
            self.registry.clear()
            self.last_use.save()
            self._volumes_at_start.clear()
        return deleted

    def pool_status(self) -> PoolStatus:
        pool = self.pool
        if pool is None:
            return PoolStatus(0, 0)
        return PoolStatus(pool.ready(), pool.size, pool.floor, pool.ceiling, pool.created)

    def inventory(self) -> Inventory:
        """What this app has on the engine; never starts, adopts or removes anything."""
        image_status = status_from_labels(self.engine.image_labels(self.spec.image_name))
        containers = self.engine.list(self.app_labels)
        members = [c for c in containers if c.labels.get(POOL_LABEL) == "1"]
        return Inventory(
            engine=self.engine.version(),
            image=image_status,
            sessions=len(containers) - len(members),
            pool_members=len(members),
            pool_members_running=sum(1 for c in members if c.running),
            volumes=len(self.engine.list_volumes(self.app_labels)),
            quota_mode=self.engine.workspace_quota(),
            images=tuple(self.engine.images(self.image_repositories)),
            runtimes=tuple(sorted(self.engine.runtimes())),
        )

    @property
    def image_repositories(self) -> list[str]:
        return [self.spec.image_name.rsplit(":", 1)[0], LOCAL_BASE_REPO]

    # -- idle reaping --------------------------------------------------------------------

    def reap_idle(self, now: float | None = None) -> list[str]:
        """Stop containers idle longer than idle_timeout_s; return the keys stopped."""
        now = time.time() if now is None else now
        with self._lock:
            candidates = list(self._sandboxes.items())
        stopped = []
        for key, sandbox in candidates:
            container = sandbox.container
            if container.stopped_idle or now - sandbox.last_used < self.spec.idle_timeout_s:
                continue
            if not sandbox.lock.acquire(blocking=False):
                continue  # busy right now: not idle
            try:
                sandbox.stop()
                container.stopped_idle = True
                stopped.append(key)
                logger.info("stopped idle sandbox %s", container.name)
            except ExecutorError as exc:
                logger.warning("could not stop idle sandbox %s: %s", container.name, exc)
            finally:
                sandbox.lock.release()
        return stopped

    def _reap_loop(self) -> None:
        interval = max(0.5, min(60.0, self.spec.idle_timeout_s / 4))
        while not self._closing.wait(interval):
            try:
                self.reap_idle()
                self.remember_use()
                if time.monotonic() >= self._retention_due:
                    self._retention_due = time.monotonic() + _RETENTION_EVERY_S
                    self.apply_retention()
            except ExecutorError as exc:
                logger.warning("idle reaper: %s", exc)

    # -- retention -----------------------------------------------------------------------

    def remember_use(self) -> None:
        """Copy each sandbox's last use into the persisted record (no I/O on the hot path)."""
        with self._lock:
            sandboxes = list(self._sandboxes.values())
        for sandbox in sandboxes:
            self.last_use.touch(sandbox.container.volume, sandbox.last_used)
        self.last_use.save()

    def apply_retention(self, now: float | None = None) -> list[str]:
        """Delete workspaces (and their stopped containers) unused for longer than the
        retention; never one whose container runs. Returns the volumes deleted."""
        days = self.spec.workspace_retention_days
        if days <= 0:
            return []
        now = time.time() if now is None else now
        self.remember_use()
        volumes = {
            v.name: v.labels
            for v in self.engine.list_volumes(self.app_labels)
            if v.labels.get(POOL_LABEL) != "1" or self.registry.entry_of_volume(v.name)
        }
        running = {info.name for info in self.engine.list(self.app_labels) if info.running}
        in_use = {self._volume_of(name) for name in running}
        with self._lock:
            in_use |= {s.container.volume for s in self._sandboxes.values() if s.container.running}
        deleted = []
        for volume in expired(volumes, self.last_use, now=now, retention_days=days, in_use=in_use):
            key, container = self._owner_of(volume, volumes[volume])
            with self._lock:
                sandbox = self._sandboxes.get(key) if key else None
                if sandbox is not None and sandbox.container.running:
                    continue  # came alive meanwhile: keep it
                self._sandboxes.pop(key, None)
            self.engine.remove(container)
            self.engine.remove_volume(volume)
            self._forget_workspace(key, volume)
            deleted.append(volume)
            logger.info("retention: deleted workspace %s (unused for %g days)", volume, days)
            if self.on_retention is not None:
                self.on_retention(key or volume, volume)
        self.last_use.save()
        return deleted

    def _volume_of(self, container: str) -> str:
        entry = self.registry.get(self.registry.key_of_container(container) or "")
        return entry[1] if entry else f"{container}-workspace"

    def _owner_of(self, volume: str, labels: dict[str, str]) -> tuple[str, str]:
        """(key, container name) of a workspace volume."""
        entry = self.registry.entry_of_volume(volume)
        if entry is not None:
            return entry
        return labels.get(USER_LABEL, ""), volume.removesuffix("-workspace")

    def close(self) -> None:
        """Stop the reaper, remove unclaimed pool members and close the runners' connections
        (session containers stay; a later process adopts them and starts new runners)."""
        self._closing.set()
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        self._forget_sessions("the app closed")

    def _forget_sessions(self, why: str) -> None:
        """Drop every session, closing its runner's connection now: a dropped session's socket
        would otherwise stay open until garbage collection."""
        with self._lock:
            sandboxes = list(self._sandboxes.values())
            self._sandboxes.clear()
        for sandbox in sandboxes:
            sandbox.slot.drop(why)
