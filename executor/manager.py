"""SandboxManager: user_id -> Sandbox. Names, labels, adoption of leftovers, idle reaping, cleanup.

A user_id can be any string. It never reaches Docker as such: the container and volume names are
a readable slug plus a hash of the whole id, so names are safe, deterministic and distinct.
Everything this app creates carries the label `mcp-code-executor.app=<app_label>`, which is how a
new process finds (and adopts or removes) what an earlier one left, and how cleanup finds it all.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from pathlib import Path

import docker.errors

import docker
from settings import ExecutorSettings

from . import _hardening
from ._registry import WorkspaceRegistry
from .errors import DockerUnavailableError, ImageNotFoundError
from .keys import split_key
from .pool import POOL_LABEL, WarmPool
from .runner import RunnerChannel, RunnerError
from .sandbox import Sandbox, kill_all_processes

logger = logging.getLogger(__name__)

APP_LABEL = "mcp-code-executor.app"
SESSION_LABEL = "mcp-code-executor.session"
USER_LABEL = "mcp-code-executor.user"
_SLUG_RE = re.compile(r"[^a-z0-9]+")
_APP_LABEL_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,40}$")


def session_key(user_id: str) -> str:
    return hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def container_name(app_label: str, user_id: str) -> str:
    """Deterministic, Docker-safe name: `<app>-<slug>-<hash of the whole id>`."""
    slug = _SLUG_RE.sub("-", user_id.lower()).strip("-")[:24].strip("-") or "session"
    return f"{app_label}-{slug}-{session_key(user_id)}"


class SandboxManager:
    """Owns every Sandbox of one app instance; thread-safe."""

    def __init__(
        self,
        client_factory,
        spec: ExecutorSettings,
        *,
        tools_path: Path | None,
        skills_path: Path | None,
    ) -> None:
        if not _APP_LABEL_RE.match(spec.app_label):
            raise ValueError(
                f"app_label {spec.app_label!r} must be lowercase letters, digits, '-._'"
            )
        self.spec = spec
        self.tools_path = tools_path
        self.skills_path = skills_path
        self._client_factory = client_factory
        self._client: docker.DockerClient | None = None
        self._sandboxes: dict[str, Sandbox] = {}
        self._lock = threading.Lock()
        self._started = False
        self._closing = threading.Event()
        self._reaper: threading.Thread | None = None
        self.pool: WarmPool | None = None
        self._volumes_at_start: set[str] = set()
        self.registry = WorkspaceRegistry(
            spec.state_dir / f"{spec.app_label}-workspaces.json" if spec.state_dir else None
        )

    # -- start-up ------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        self.start()
        assert self._client is not None
        return self._client

    def start(self) -> None:
        """Connect, check the image, adopt or remove leftovers, start the reaper. Idempotent."""
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            try:
                client = self._client_factory()
                client.ping()
            except docker.errors.DockerException as exc:
                raise DockerUnavailableError(
                    f"cannot reach the Docker daemon ({exc}). Start it (`sudo systemctl start "
                    "docker`, or `sudo dockerd &`), check DOCKER_HOST, and that this user may use "
                    "the Docker socket."
                ) from exc
            try:
                image_id = client.images.get(self.spec.image_name).id
            except docker.errors.ImageNotFound as exc:
                raise ImageNotFoundError(
                    f"the sandbox image {self.spec.image_name} does not exist; build it with "
                    "`make image` (or `python -m executor.image build`)"
                ) from exc
            self._client = client
            self._sweep(image_id)
            if self._reaper is None:
                self._reaper = threading.Thread(
                    target=self._reap_loop, name="sandbox-reaper", daemon=True
                )
                self._reaper.start()
            if self.spec.pool_size > 0:
                self.pool = WarmPool(
                    client,
                    size=self.spec.pool_size,
                    app_label=self.spec.app_label,
                    labels={APP_LABEL: self.spec.app_label},
                    container_kwargs=self._pool_container_kwargs,
                    image_id=lambda: client.images.get(self.spec.image_name).id,
                    check_every_s=self.spec.pool_check_interval_s,
                    start_runner=self._pool_runner if self.spec.use_runner else None,
                )
                self.pool.start()
            self._started = True

    def _labels(self, user_id: str) -> dict[str, str]:
        return {
            APP_LABEL: self.spec.app_label,
            SESSION_LABEL: session_key(user_id),
            USER_LABEL: user_id[:1024],
        }

    def _pool_container_kwargs(self, name: str, volume: str) -> dict:
        assert self.pool is not None
        return _hardening.container_kwargs(
            self.spec,
            name=name,
            volume=volume,
            labels=self.pool.labels,
            tools_path=self.tools_path,
            skills_path=self.skills_path,
        )

    def _sweep(self, image_id: str) -> None:
        """Adopt this app's containers from an earlier process; remove those of an old image
        and unclaimed pool members (with their volumes)."""
        assert self._client is not None
        selector = {"label": f"{APP_LABEL}={self.spec.app_label}"}
        claimed = self.registry.names()
        for container in self._client.containers.list(all=True, filters=selector):
            pooled = container.labels.get(POOL_LABEL) == "1"
            user_id = (
                self.registry.key_of_container(container.name)
                if pooled
                else container.labels.get(USER_LABEL)
            )
            if container.attrs.get("Image") != image_id or user_id is None:
                logger.info("removing leftover sandbox %s", container.name)
                container.remove(force=True)
                continue
            if not pooled and container_name(self.spec.app_label, user_id) != container.name:
                continue  # the label could not hold the id exactly; found by name on next use
            self._sandboxes[user_id] = self._new_sandbox(user_id, container_id=container.id)
            logger.info("adopted sandbox %s (%s)", container.name, container.status)
        self._volumes_at_start = {
            v.name for v in self._client.volumes.list(filters=selector)
        }  # a session with a volume here keeps it: it must not take a pooled container
        pool_volumes = {"label": [f"{APP_LABEL}={self.spec.app_label}", f"{POOL_LABEL}=1"]}
        for volume in self._client.volumes.list(filters=pool_volumes):
            if volume.name not in claimed:
                try:
                    volume.remove(force=True)
                except docker.errors.APIError as exc:  # still mounted by a container going away
                    logger.warning("could not remove leftover pool volume %s: %s", volume.name, exc)

    def _new_sandbox(self, user_id: str, container_id: str | None = None) -> Sandbox:
        registered = self.registry.get(user_id)
        name, volume = registered or (
            container_name(self.spec.app_label, user_id),
            f"{container_name(self.spec.app_label, user_id)}-workspace",
        )
        return Sandbox(
            self._client,
            self.spec,
            user_id=user_id,
            name=name,
            volume=volume,
            labels=self._labels(user_id),
            tools_path=self.tools_path,
            skills_path=self.skills_path,
            container_id=container_id,
            claim=None if registered else self._claim,
        )

    def _pool_runner(self, container_id: str) -> RunnerChannel | None:
        """Start a pool member's runner ahead of time; None if it will not start (then the
        session starts one on first use)."""
        assert self._client is not None
        client = self._client

        def kill_all() -> None:
            with contextlib.suppress(docker.errors.APIError):
                kill_all_processes(client, container_id)

        try:
            return RunnerChannel(
                client, container_id, kill_grace_s=self.spec.kill_grace_s, kill_all=kill_all
            )
        except (RunnerError, docker.errors.APIError) as exc:
            logger.warning("pool member runner did not start: %s", exc)
            return None

    def _claim(self, sandbox: Sandbox) -> bool:
        """Give a new session a warm-pool container (recorded, so its volume is found again)."""
        if self.pool is None or sandbox.volume in self._volumes_at_start:
            return False
        member = self.pool.claim()
        if member is None:
            return False
        self.registry.set(sandbox.user_id, member.name, member.volume)
        sandbox.attach(
            name=member.name,
            volume=member.volume,
            container_id=member.container_id,
            runner=member.runner,
        )
        logger.info("session took pool member %s", member.name)
        return True

    # -- sessions ------------------------------------------------------------------------

    def get(self, user_id: str) -> Sandbox:
        """The user's Sandbox (its container is made on first use, by Sandbox.ensure_running)."""
        self.start()
        with self._lock:
            sandbox = self._sandboxes.get(user_id)
            if sandbox is None:
                sandbox = self._sandboxes[user_id] = self._new_sandbox(user_id)
            return sandbox

    def live_keys(self, owner: str) -> set[str]:
        """Keys of `owner` whose containers are running now."""
        with self._lock:
            return {
                key
                for key, sandbox in self._sandboxes.items()
                if sandbox.is_live() and split_key(key)[0] == owner
            }

    def stop(self, user_id: str) -> None:
        with self._lock:
            sandbox = self._sandboxes.get(user_id)
        if sandbox is None:
            sandbox = self.get(user_id)
        sandbox.stop()

    def remove(self, user_id: str, *, volume: bool = False) -> None:
        self.start()
        with self._lock:
            sandbox = self._sandboxes.pop(user_id, None) or self._new_sandbox(user_id)
        sandbox.remove(volume=volume)
        if volume:
            self.registry.drop(user_id)

    def remove_all(self, *, volumes: bool = False) -> None:
        """Remove every container (and volume, when asked) with this app's label."""
        self.start()
        assert self._client is not None
        if self.pool is not None:
            self.pool.close()  # its members go too; a later start() makes a new pool
            self.pool = None
            self._started = False
        with self._lock:
            self._sandboxes.clear()
        selector = {"label": f"{APP_LABEL}={self.spec.app_label}"}
        for container in self._client.containers.list(all=True, filters=selector):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        if volumes:
            for volume in self._client.volumes.list(filters=selector):
                with contextlib.suppress(docker.errors.NotFound):
                    volume.remove(force=True)
            self.registry.clear()

    # -- idle reaping --------------------------------------------------------------------

    def reap_idle(self, now: float | None = None) -> list[str]:
        """Stop containers idle longer than idle_timeout_s; return the user_ids stopped."""
        now = time.monotonic() if now is None else now
        with self._lock:
            candidates = list(self._sandboxes.values())
        stopped = []
        for sandbox in candidates:
            if sandbox.stopped_idle or now - sandbox.last_used < self.spec.idle_timeout_s:
                continue
            if not sandbox.lock.acquire(blocking=False):
                continue  # busy right now: not idle
            try:
                sandbox.stop()
                sandbox.stopped_idle = True
                stopped.append(sandbox.user_id)
                logger.info("stopped idle sandbox %s", sandbox.name)
            except docker.errors.APIError as exc:
                logger.warning("could not stop idle sandbox %s: %s", sandbox.name, exc)
            finally:
                sandbox.lock.release()
        return stopped

    def _reap_loop(self) -> None:
        interval = max(0.5, min(60.0, self.spec.idle_timeout_s / 4))
        while not self._closing.wait(interval):
            try:
                self.reap_idle()
            except docker.errors.DockerException as exc:
                logger.warning("idle reaper: %s", exc)

    def close(self) -> None:
        """Stop the reaper and remove unclaimed pool members (session containers stay)."""
        self._closing.set()
        if self.pool is not None:
            self.pool.close()
            self.pool = None
