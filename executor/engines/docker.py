"""The Docker engine: the only module that talks to the docker SDK.

Every SDK, requests, urllib3 and socket exception is translated here, in `_translated`, into the
executor's error tree; a daemon that does not answer becomes `SandboxUnavailableError` at once.
Exec streams are read from the hijacked connection itself (docker-py's readers are quadratic and
have no deadline): `DockerExecChannel` parses Docker's 8-byte multiplexing headers, once, and
works over a plain unix/tcp socket as well as over TLS (bytes already decrypted are honoured by
`wait`, want-read/want-write are "not now", and TLS cannot half-close, so callers frame their
input instead of relying on EOF). `ssh://` hosts are refused with a workaround: docker-py's ssh
transport cannot be polled for writability, so the runner would never start over it.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker.errors
import requests.exceptions
import urllib3.exceptions
from docker.constants import MINIMUM_DOCKER_API_VERSION

import docker

from ..errors import (
    ContainerConflictError,
    ContainerNotFoundError,
    EngineError,
    ImageNotFoundError,
    SandboxUnavailableError,
)
from . import _docker_hardening
from .base import (
    ChannelClosed,
    ContainerInfo,
    ContainerRequest,
    Engine,
    Event,
    ExecChannel,
    VolumeInfo,
)

_HEADER = struct.Struct(">BxxxL")
_RECV_SIZE = 256 * 1024
_UNREACHABLE_HINT = (
    "Is Docker running? Start it (`sudo systemctl start docker`, or `sudo dockerd &`), check "
    "DOCKER_HOST, and that this user may use the Docker socket."
)
_SSH_REFUSAL = (
    "DOCKER_HOST={host}: ssh:// is not supported (docker-py's ssh transport cannot stream an "
    "exec both ways). Forward the remote socket instead: `ssh -NL /tmp/docker.sock:"
    "/var/run/docker.sock user@host &` and set DOCKER_HOST=unix:///tmp/docker.sock."
)


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn any Docker-side failure inside the block into the executor's own error."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise ImageNotFoundError(
            f"the sandbox image does not exist ({exc.explanation or exc}); build it with "
            "`make image` (or `python -m executor.image build`)"
        ) from exc
    except docker.errors.NotFound as exc:
        raise ContainerNotFoundError(f"{what}: {exc.explanation or exc}") from exc
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            raise ContainerConflictError(f"{what}: {exc.explanation or exc}") from exc
        raise EngineError(f"{what}: {exc.explanation or exc}") from exc
    except (
        docker.errors.DockerException,
        requests.exceptions.RequestException,
        urllib3.exceptions.HTTPError,
        OSError,
    ) as exc:
        raise SandboxUnavailableError(
            f"cannot reach the Docker daemon ({type(exc).__name__}: {exc}). {_UNREACHABLE_HINT}"
        ) from exc


def _unwrap(raw: Any) -> tuple[socket.socket, bytes]:
    """The socket under docker-py's hijacked response, plus bytes already buffered above it
    (http.client may have read past the response headers into the exec's output)."""
    sock = getattr(raw, "_sock", raw)
    initial = b""
    response = getattr(raw, "_response", None)
    reader = getattr(getattr(getattr(response, "raw", None), "_fp", None), "fp", None)
    if reader is not None and hasattr(reader, "peek"):
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError, OSError, ValueError):
            available = len(reader.peek(0))
            if available:
                initial = reader.read(available)
    return sock, initial


class DockerExecChannel(ExecChannel):
    """One exec's hijacked connection: Docker's multiplexed stream in, stdin out."""

    def __init__(self, api: docker.APIClient, exec_id: str, raw: Any) -> None:
        self._api = api
        self._exec_id = exec_id
        self._raw = raw  # keeps docker-py's response alive (it closes TLS sockets when collected)
        self._sock, initial = _unwrap(raw)
        self._sock.setblocking(False)
        self._tls = isinstance(self._sock, ssl.SSLSocket)
        self._pending = bytearray(initial)  # received, not yet parsed
        self._frame_left = 0
        self._frame_stream = 0
        self._eof = False
        self._closed = False

    def wait(self, timeout: float, *, write: bool = False) -> tuple[bool, bool]:
        if self._pending or self._eof or (self._tls and self._sock.pending()):
            return True, write
        try:
            readable, writable, _ = select.select(
                [self._sock], [self._sock] if write else [], [], max(0.0, timeout)
            )
        except (OSError, ValueError):  # closed under us
            return True, False
        return bool(readable), bool(writable)

    def read(self) -> list[Event] | None:
        if not self._eof:
            try:
                chunk = self._sock.recv(_RECV_SIZE)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                chunk = None
            except OSError:
                chunk = b""
            if chunk == b"":
                self._eof = True
            elif chunk:
                self._pending += chunk
        events = self._parse()
        if self._eof and not events and not self._pending:
            return None
        return events

    def _parse(self) -> list[Event]:
        events: list[Event] = []
        view = self._pending
        offset = 0
        while offset < len(view):
            if self._frame_left:
                take = min(self._frame_left, len(view) - offset)
                if self._frame_stream in (1, 2):
                    events.append((self._frame_stream, bytes(view[offset : offset + take])))
                self._frame_left -= take
                offset += take
                continue
            if len(view) - offset < _HEADER.size:
                break
            self._frame_stream, self._frame_left = _HEADER.unpack_from(view, offset)
            offset += _HEADER.size
        del self._pending[:offset]
        if self._eof and self._pending:  # a cut-off header at the very end: nothing to show
            self._pending.clear()
        return events

    def send(self, data: bytes | memoryview) -> int:
        try:
            return self._sock.send(data[: 64 * 1024] if self._tls else data)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return 0
        except OSError as exc:
            raise ChannelClosed(str(exc)) from exc

    def close_stdin(self) -> bool:
        if self._tls:  # SSLSocket.shutdown tears TLS down: no half-close over TLS
            return False
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
        return True

    def exit_code(self) -> int | None:
        deadline = time.monotonic() + 2.0
        while True:
            try:
                with _translated("exec inspect"):
                    info = self._api.exec_inspect(self._exec_id)
            except ContainerNotFoundError:
                return None
            if not info.get("Running"):
                code = info.get("ExitCode")
                return None if code is None else int(code)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.005)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()


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
    ) -> None:
        self._client = client
        self._max_connections = max_connections
        self._environ = dict(os.environ if environ is None else environ)
        self._lock = threading.Lock()
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
        with _translated(f"image {image}"):
            return self.api.inspect_image(image)["Id"]

    def image_labels(self, image: str) -> dict[str, str] | None:
        try:
            with _translated(f"image {image}"):
                return self.api.inspect_image(image)["Config"].get("Labels") or {}
        except ImageNotFoundError:
            return None

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

    def ensure_volume(self, name: str, labels: dict[str, str], size_bytes: int) -> None:
        with _translated(f"volume {name}"):
            try:
                self.api.inspect_volume(name)
            except docker.errors.NotFound:
                self.api.create_volume(name=name, labels=labels)

    def remove_volume(self, name: str) -> None:
        with contextlib.suppress(ContainerNotFoundError), _translated(f"remove volume {name}"):
            self.api.remove_volume(name, force=True)

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
