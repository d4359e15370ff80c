"""The Docker engine: the only code that talks to the docker SDK (with `_docker_io`).

Every SDK, requests, urllib3 and socket exception is translated, in `_translated` (in
`_docker_io`, with the exec channel that reads Docker's stream itself), into the executor's error
tree; a daemon that does not answer becomes `SandboxUnavailableError` at once. `ssh://` hosts are
refused with a workaround: docker-py's ssh transport cannot be polled for writability, so the
runner would never start over it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

import docker.errors
from docker.constants import MINIMUM_DOCKER_API_VERSION

import docker
from settings import WorkspaceQuotaMode, check_choice

from ..errors import (
    ContainerConflictError,
    ContainerNotFoundError,
    EngineError,
    ExecutorError,
    ImageNotFoundError,
    SandboxUnavailableError,
)
from . import _docker_hardening
from ._docker_io import DockerExecChannel, _translated
from ._loop_quota import (
    IMAGE_LABEL,
    LoopImages,
    QuotaMode,
    attached_to,
    loop_unavailable_reason,
)
from .base import (
    ContainerInfo,
    ContainerRequest,
    Engine,
    ExecChannel,
    VolumeInfo,
)

logger = logging.getLogger(__name__)

_IMAGE_ID_TTL_S = 5.0
_SSH_REFUSAL = (
    "DOCKER_HOST={host}: ssh:// is not supported (docker-py's ssh transport cannot stream an "
    "exec both ways). Forward the remote socket instead: `ssh -NL /tmp/docker.sock:"
    "/var/run/docker.sock user@host &` and set DOCKER_HOST=unix:///tmp/docker.sock."
)


class _NoEnvAPIClient(docker.APIClient):
    """An API client that ignores REQUESTS_CA_BUNDLE, proxies and .netrc from the environment:
    requests would otherwise replace Docker's own TLS CA with the host's bundle, and it reads
    the environment on every request, the first (the version check) included."""

    @property
    def trust_env(self) -> bool:
        return False

    @trust_env.setter
    def trust_env(self, _value: bool) -> None:
        pass


class DockerEngine(Engine):
    """Sandboxes as Docker containers, on the daemon DOCKER_HOST (or the given client) names."""

    name = "docker"

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        max_connections: int = 64,
        environ: dict[str, str] | None = None,
        quota_dir: Path | None = None,
        quota_mode: WorkspaceQuotaMode = "auto",
        quota_spares: int = 4,
    ) -> None:
        check_choice("EXECUTOR_WORKSPACE_QUOTA_MODE", quota_mode, WorkspaceQuotaMode)
        self._client = client
        self._max_connections = max_connections
        self._environ = dict(os.environ if environ is None else environ)
        self._lock = threading.Lock()
        self._images = LoopImages(quota_dir, quota_spares) if quota_dir is not None else None
        self._quota_wanted = quota_mode
        self._quota: QuotaMode | None = None
        self.quota_note = ""
        self._image_ids: dict[str, tuple[str, float]] = {}
        host = self._environ.get("DOCKER_HOST", "")
        if client is None and host.startswith("ssh://"):
            raise SandboxUnavailableError(_SSH_REFUSAL.format(host=host))

    @property
    def client(self) -> docker.DockerClient:
        """The SDK client, made on first use (building it asks the daemon its API version)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    with _translated("connect"):
                        kwargs = docker.utils.kwargs_from_env(environment=self._environ)
                        api = _NoEnvAPIClient(
                            version="auto",
                            timeout=120,
                            max_pool_size=self._max_connections,
                            **kwargs,
                        )
                        client = docker.DockerClient(version=MINIMUM_DOCKER_API_VERSION, **kwargs)
                        client.api.close()
                        client.api = api
                    self._client = client
        return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    def ping(self) -> None:
        with _translated("ping"):
            self.api.ping()

    def version(self) -> str:
        with _translated("version"):
            info = self.api.version()
        return f"Docker {info.get('Version')} (API {info.get('ApiVersion')})"

    def runtimes(self) -> set[str]:
        """Container runtimes the daemon knows (runc, runsc, ...)."""
        with _translated("info"):
            return set((self.api.info().get("Runtimes") or {}).keys())

    def image_id(self, image: str) -> str:
        """The image's id; remembered for a few seconds (a crowd of new sessions asks often)."""
        cached = self._image_ids.get(image)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        with _translated(f"image {image}"):
            found = self.api.inspect_image(image)["Id"]
        self._image_ids[image] = (found, time.monotonic() + _IMAGE_ID_TTL_S)
        return found

    def image_labels(self, image: str) -> dict[str, str] | None:
        try:
            with _translated(f"image {image}"):
                return self.api.inspect_image(image)["Config"].get("Labels") or {}
        except ImageNotFoundError:
            return None

    def images(self, repositories: list[str]) -> list[tuple[str, int]]:
        with _translated("list images"):
            found = self.api.images()
        return [
            (tag, int(image.get("Size") or 0))
            for image in found
            for tag in image.get("RepoTags") or []
            if tag.rsplit(":", 1)[0] in repositories
        ]

    def remove_image(self, tag: str) -> None:
        with contextlib.suppress(ImageNotFoundError), _translated(f"remove image {tag}"):
            self.api.remove_image(tag)

    @staticmethod
    def _info(attrs: dict[str, Any]) -> ContainerInfo:
        state = attrs.get("State")
        if isinstance(state, dict):  # inspect
            running, paused = bool(state.get("Running")), bool(state.get("Paused"))
            status = state.get("Status", "")
            name = attrs.get("Name", "").lstrip("/")
            labels = (attrs.get("Config") or {}).get("Labels") or {}
            image = attrs.get("Image", "")
        else:  # list
            status = state or ""
            running, paused = status == "running", status == "paused"
            name = (attrs.get("Names") or ["/"])[0].lstrip("/")
            labels = attrs.get("Labels") or {}
            image = attrs.get("ImageID", "")
        return ContainerInfo(attrs["Id"], name, running or paused, paused, image, labels, status)

    def inspect(self, ref: str) -> ContainerInfo | None:
        try:
            with _translated(f"inspect {ref}"):
                return self._info(self.api.inspect_container(ref))
        except ContainerNotFoundError:
            return None

    def list(self, labels: dict[str, str]) -> list[ContainerInfo]:
        selector = [f"{k}={v}" for k, v in labels.items()]
        with _translated("list containers"):
            found = self.api.containers(all=True, filters={"label": selector})
        return [self._info(attrs) for attrs in found]

    def create(self, request: ContainerRequest) -> str:
        kwargs = _docker_hardening.container_kwargs(request)
        try:
            with _translated(f"create {request.name}"):
                return self.client.containers.run(**kwargs).id
        except ContainerConflictError:
            raise  # another process created it first; the caller decides
        except (EngineError, ImageNotFoundError):
            self.remove(request.name)  # created but not started: do not leave it behind
            raise

    def start(self, ref: str) -> None:
        info = self.inspect(ref)
        if info is None:
            raise ContainerNotFoundError(f"start {ref}: no such container")
        with _translated(f"start {ref}"):
            if info.paused:
                self.api.unpause(ref)
            elif not info.running:
                self.api.start(ref)

    def stop(self, ref: str, timeout_s: float = 1.0) -> None:
        with _translated(f"stop {ref}"):
            self.api.stop(ref, timeout=max(0, int(timeout_s)))

    def kill(self, ref: str) -> None:
        with contextlib.suppress(ContainerConflictError), _translated(f"kill {ref}"):
            self.api.kill(ref)

    def remove(self, ref: str) -> None:
        with contextlib.suppress(ContainerNotFoundError), _translated(f"remove {ref}"):
            self.api.remove_container(ref, force=True)

    # -- workspaces ---------------------------------------------------------------------------

    @property
    def quota_mode(self) -> QuotaMode:
        """How workspace sizes are enforced here: decided once, on first use, and logged."""
        if self._quota is None:
            reason = self._loop_unavailable()
            if reason is None:
                self._quota, self.quota_note = QuotaMode.LOOP, "a loop-mounted ext4 image each"
            elif self._quota_wanted == "loop":
                raise EngineError(f"EXECUTOR_WORKSPACE_QUOTA_MODE=loop, but {reason}")
            else:
                self._quota, self.quota_note = QuotaMode.PER_FILE, reason
            logger.info("workspace quota: %s (%s)", self._quota.value, self.quota_note)
        return self._quota

    def _loop_unavailable(self) -> str | None:
        if self._quota_wanted == "off" or self._images is None:
            return "turned off (EXECUTOR_WORKSPACE_QUOTA_MODE=off)"
        reason = loop_unavailable_reason()
        if reason is not None:
            return reason
        with _translated("info"):
            daemon_host = self.api.info().get("Name")
        if daemon_host != platform.node():  # loop devices must be where the daemon mounts
            return f"the Docker daemon runs on another machine ({daemon_host})"
        return None

    def workspace_quota(self) -> str:
        return f"{self.quota_mode.value} ({self.quota_note})"

    def prepare_workspaces(self, size_bytes: int) -> None:
        """Format spare quota images now, so the first crowd of new sessions finds them."""
        if self.quota_mode is QuotaMode.LOOP and self._images is not None:
            self._images.refill_later(size_bytes)

    def ensure_volume(self, name: str, labels: dict[str, str], size_bytes: int) -> None:
        """Create the workspace unless it exists; a loop-backed one is checked (and attached
        again after a reboot) so it mounts its own image and nothing else."""
        with _translated(f"volume {name}"):
            try:
                found = self.api.inspect_volume(name)
            except docker.errors.NotFound:
                found = None
        if found is not None:
            if (found.get("Labels") or {}).get(IMAGE_LABEL):
                self._check_loop_volume(found, labels)
            return
        if self.quota_mode is QuotaMode.LOOP:
            assert self._images is not None
            image, device = self._images.make(name, size_bytes)
            options = {"type": "ext4", "device": device}
            labels = {**labels, IMAGE_LABEL: str(image)}
            try:
                with _translated(f"volume {name}"):
                    self.api.create_volume(name=name, driver_opts=options, labels=labels)
            except ExecutorError:
                self._images.discard(image)
                raise
            return
        with _translated(f"volume {name}"):
            self.api.create_volume(name=name, labels=labels)

    def _check_loop_volume(self, found: dict[str, Any], labels: dict[str, str]) -> None:
        name = found["Name"]
        image = Path(found["Labels"][IMAGE_LABEL])
        device = (found.get("Options") or {}).get("device", "")
        if attached_to(device, image):
            return
        if not image.exists():
            raise EngineError(f"the workspace image of {name} is missing ({image})")
        attached = LoopImages.devices_of(image)
        new_device = attached[0] if attached else LoopImages.attach(image, device)
        if new_device == device:
            logger.info("workspace %s attached again on %s", name, device)
            return
        # The old number names something else now: recreate the volume on the new device.
        # Containers still referring to it are stopped sandboxes; they are made again on use.
        logger.info("workspace %s moves from %s to %s", name, device, new_device)
        with _translated(f"volume {name}"):
            for container in self.api.containers(all=True, filters={"volume": name}):
                self.api.remove_container(container["Id"], force=True)
            self.api.remove_volume(name, force=True)
            options = {"type": "ext4", "device": new_device}
            self.api.create_volume(
                name=name, driver_opts=options, labels={**labels, IMAGE_LABEL: str(image)}
            )

    def remove_volume(self, name: str) -> None:
        """Remove a workspace, and its image when it has one (detached first)."""
        try:
            with _translated(f"volume {name}"):
                found = self.api.inspect_volume(name)
        except ContainerNotFoundError:
            return
        with contextlib.suppress(ContainerNotFoundError), _translated(f"remove volume {name}"):
            self.api.remove_volume(name, force=True)
        image = (found.get("Labels") or {}).get(IMAGE_LABEL)
        if image and self._images is not None:
            self._images.discard(Path(image))

    def list_volumes(self, labels: dict[str, str]) -> list[VolumeInfo]:
        selector = [f"{k}={v}" for k, v in labels.items()]
        with _translated("list volumes"):
            found = self.api.volumes(filters={"label": selector}).get("Volumes") or []
        return [VolumeInfo(v["Name"], v.get("Labels") or {}) for v in found]

    def open_exec(self, ref: str, argv: list[str], *, stdin: bool) -> ExecChannel:
        with _translated(f"exec in {ref}"):
            exec_id = self.api.exec_create(ref, argv, **_docker_hardening.exec_kwargs(stdin=stdin))[
                "Id"
            ]
            raw = self.api.exec_start(exec_id, socket=True)
        return DockerExecChannel(self.api, exec_id, raw)

    def exec_detached(self, ref: str, argv: list[str]) -> None:
        with _translated(f"exec in {ref}"):
            exec_id = self.api.exec_create(ref, argv, **_docker_hardening.exec_kwargs(stdin=False))[
                "Id"
            ]
            self.api.exec_start(exec_id, detach=True)

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.close()
