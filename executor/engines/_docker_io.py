"""Docker's wire, under the Docker engine: the one error boundary (`_translated`) and exec
streams read from the hijacked connection itself.

docker-py's stream readers are quadratic and have no deadline, so `DockerExecChannel` parses
Docker's 8-byte multiplexing headers, once, and works over a plain unix/tcp socket as well as
over TLS (bytes already decrypted are honoured by `wait`, want-read/want-write are "not now", and
TLS cannot half-close, so callers frame their input instead of relying on EOF).
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from typing import Any

import docker.errors
import requests.exceptions
import urllib3.exceptions

import docker

from ..errors import (
    ContainerConflictError,
    ContainerNotFoundError,
    EngineError,
    ImageNotFoundError,
    SandboxUnavailableError,
)
from .base import ChannelClosed, Event, ExecChannel

_HEADER = struct.Struct(">BxxxL")
_RECV_SIZE = 256 * 1024
_POLL_READ = select.POLLIN | select.POLLPRI
_POLL_READ_OR_GONE = _POLL_READ | select.POLLHUP | select.POLLERR | select.POLLNVAL
_UNREACHABLE_HINT = (
    "Is Docker running? Start it (`sudo systemctl start docker`, or `sudo dockerd &`), check "
    "DOCKER_HOST, and that this user may use the Docker socket."
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

    def wait(
        self, timeout: float, *, write: bool = False, wake: int | None = None
    ) -> tuple[bool, bool]:
        if self._parseable() or self._eof or (self._tls and self._sock.pending()):
            return True, write
        # poll, not select: select() cannot watch a descriptor numbered 1024 or more, and an app
        # with a few hundred sessions (each a runner's socket, an audit file...) has such.
        poller = select.poll()
        try:
            poller.register(self._sock, _POLL_READ | (select.POLLOUT if write else 0))
            if wake is not None:
                poller.register(wake, select.POLLIN)
            events = poller.poll(math.ceil(max(0.0, timeout) * 1000))
        except (OSError, ValueError):  # closed under us (its descriptor is -1 then)
            return True, False
        mask = 0
        for fd, event in events:
            if fd != wake:
                mask |= event
        return bool(mask & _POLL_READ_OR_GONE), bool(mask & select.POLLOUT)

    def _parseable(self) -> bool:
        """Whether received bytes make output without reading more: a partial frame header
        alone does not (waiting on it would spin until the rest arrives)."""
        if self._frame_left:
            return bool(self._pending)
        return len(self._pending) >= _HEADER.size

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
