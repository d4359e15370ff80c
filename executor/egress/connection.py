"""One egress connection between a sandbox client and its peer, and what it shares with the
relay that made it: the per-session limits, a refusal, and the sink that carries its events
back toward the sandbox. See relay.py for the whole picture (windows, limits, audit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from settings import ExecutorSettings

from ..sandbox_side.protocol import WINDOW
from .policy import Decision

if TYPE_CHECKING:
    from .relay import EgressRelay

logger = logging.getLogger(__name__)

CHUNK = 1 << 20  # largest single read from a peer (one frame to the runner)


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def _words(exc: OSError) -> str:
    """What went wrong, in the system's words ("Connection refused"), without addresses."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


@dataclass(frozen=True)
class EgressLimits:
    """Per-session limits of egress connections, and the credit window of each direction."""

    max_connections: int = 32
    max_connection_bytes: int = 1 << 30
    max_session_bytes: int = 4 << 30
    connect_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    window_bytes: int = WINDOW  # the runner's window: both ends must agree

    @classmethod
    def from_settings(cls, spec: ExecutorSettings) -> EgressLimits:
        """The limits the `EXECUTOR_EGRESS_*` settings give."""
        return cls(
            max_connections=spec.egress_max_connections,
            max_connection_bytes=spec.egress_max_connection_bytes,
            max_session_bytes=spec.egress_max_session_bytes,
            connect_timeout_s=spec.egress_connect_timeout_s,
            idle_timeout_s=spec.egress_idle_timeout_s,
        )


@dataclass(frozen=True)
class Refusal:
    """An `open` that did not connect. `status` is the HTTP status for the sandbox's client:
    403 refused by the allowlist, 429 too many connections, 502 no route (did not resolve, or
    the connection failed), 503 the session or the relay is closing, 504 connect timeout."""

    reason: str
    status: int


class EgressSink(Protocol):
    """Where a connection's events go, toward the sandbox. Called on the loop, in order."""

    def data(self, data: bytes) -> None:
        """Bytes from the peer (never more than the sandbox granted)."""

    def written(self, n: int) -> None:
        """`n` bytes the sandbox sent reached the peer: credit for `n` more."""

    def eof(self) -> None:
        """The peer half-closed (no more data will come)."""

    def closed(self, reason: str) -> None:
        """The connection is over (called once, last)."""


Audit = Callable[[dict], None]


class _Session:
    """Connections and bytes of one session key."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.connections: set[EgressConnection] = set()
        self.opening = 0
        self.connecting: set[asyncio.Task] = set()  # connects under way (cancelled at the end)
        self.used = 0  # bytes both ways, all connections, since the session began
        self.closed = False


_EOF = object()  # in a connection's outgoing queue: shut the peer's write side


class EgressConnection:
    """One connection between a sandbox client and a remote peer (made by `EgressRelay.open`).

    `window` is how many bytes the sandbox may have sent and not yet had credited.
    """

    def __init__(
        self,
        relay: EgressRelay,
        session: _Session,
        decision: Decision,
        address: str,
        sock: socket.socket,
        sink: EgressSink,
        started: float,
    ) -> None:
        self.key = session.key
        self.host = decision.host
        self.port = decision.port
        self.address = address
        self.window = relay.limits.window_bytes
        self.bytes_in = 0  # from the peer to the sandbox
        self.bytes_out = 0  # from the sandbox to the peer
        self.reason = ""
        self._relay = relay
        self._limits = relay.limits
        self._session = session
        self._sock = sock
        self._sink = sink
        self._started = started
        self._loop = asyncio.get_running_loop()
        self._granted = 0  # peer bytes the sandbox may still receive
        self._grant_event = asyncio.Event()
        self._outgoing: deque[bytes | object] = deque()
        self._buffered = 0
        self._wake_writer = asyncio.Event()
        self._peer_eof = False
        self._write_shut = False
        self._done = False
        self._last = self._loop.time()
        self._idle = self._loop.call_later(self._limits.idle_timeout_s, self._check_idle)
        self._tasks = {
            self._loop.create_task(self._read_loop(), name=f"egress-read {self.host}"),
            self._loop.create_task(self._write_loop(), name=f"egress-write {self.host}"),
        }
        self._live_tasks = len(self._tasks)
        for task in self._tasks:
            task.add_done_callback(self._task_done)

    # -- calls from the sandbox side -------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Bytes from the sandbox toward the peer, within the credit `sink.written` gave."""
        if self._done or not data:
            return
        if self._write_shut:
            self._finish("the sandbox sent data after closing its side")
            return
        if self._buffered + len(data) > self.window:
            self._finish("the sandbox sent more than its window")
            return
        if self._over_limit(len(data)):
            return
        self._session.used += len(data)
        self._outgoing.append(bytes(data))
        self._buffered += len(data)
        self._wake_writer.set()

    def grant(self, n: int) -> None:
        """The sandbox consumed `n` more bytes: the relay may read `n` more from the peer."""
        if self._done or n <= 0:
            return
        self._granted += n
        if self._granted > self._limits.window_bytes:
            self._finish("the sandbox granted more than its window")
            return
        self._grant_event.set()

    def shutdown_write(self) -> None:
        """The sandbox half-closed: the peer gets EOF once the queued bytes are written."""
        if self._done or self._write_shut:
            return
        self._write_shut = True
        self._outgoing.append(_EOF)
        self._wake_writer.set()

    def close(self, reason: str = "closed by the sandbox") -> None:
        """Abort the connection (the command ended or was stopped, the session ended)."""
        self._finish(reason)

    @property
    def closed(self) -> bool:
        return self._done

    @property
    def buffered(self) -> int:
        """Bytes the sandbox sent that wait to be written to the peer."""
        return self._buffered

    # -- the loops -------------------------------------------------------------------------

    def _remaining(self) -> tuple[int, str]:
        """Bytes this connection may still move, and the reason it stops when none."""
        conn = self._limits.max_connection_bytes - (self.bytes_in + self.bytes_out + self._buffered)
        session = self._limits.max_session_bytes - self._session.used
        if conn <= session:
            return (
                conn,
                f"the connection passed its limit of {_size(self._limits.max_connection_bytes)}",
            )
        return session, f"the session passed its limit of {_size(self._limits.max_session_bytes)}"

    def _over_limit(self, n: int) -> bool:
        remaining, reason = self._remaining()
        if n > remaining:
            self._finish(reason)
            return True
        return False

    async def _read_loop(self) -> None:
        loop = self._loop
        while True:
            while self._granted <= 0:
                self._grant_event.clear()
                await self._grant_event.wait()
            remaining, reason = self._remaining()
            want = min(self._granted, CHUNK, remaining)
            try:
                data = await loop.sock_recv(self._sock, max(want, 1))
            except OSError as exc:
                self._finish(f"the peer connection failed ({_words(exc)})")
                return
            if not data:
                self._on_peer_eof()
                return
            if want <= 0:  # at the limit, and the peer has more to say
                self._finish(reason)
                return
            self.bytes_in += len(data)
            self._session.used += len(data)
            self._granted -= len(data)
            self._last = loop.time()
            self._sink.data(data)

    async def _write_loop(self) -> None:
        loop = self._loop
        while True:
            while not self._outgoing:
                self._wake_writer.clear()
                await self._wake_writer.wait()
            item = self._outgoing.popleft()
            if item is _EOF:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_WR)
                if self._peer_eof:
                    self._finish("done")
                return
            assert isinstance(item, bytes)
            try:
                await loop.sock_sendall(self._sock, item)
            except OSError as exc:
                self._finish(f"the peer stopped reading ({_words(exc)})")
                return
            self._buffered -= len(item)
            self.bytes_out += len(item)
            self._last = loop.time()
            self._sink.written(len(item))

    def _on_peer_eof(self) -> None:
        self._peer_eof = True
        self._sink.eof()
        if self._write_shut and not self._outgoing and self._buffered == 0:
            self._finish("done")

    def _check_idle(self) -> None:
        if self._done:
            return
        idle = self._limits.idle_timeout_s
        quiet = self._loop.time() - self._last
        if quiet >= idle:
            self._finish(f"idle for {idle:g} s (no bytes either way)")
        else:
            self._idle = self._loop.call_later(idle - quiet, self._check_idle)

    # -- the end ---------------------------------------------------------------------------

    def _task_done(self, _task: asyncio.Task) -> None:
        # The socket is closed only when no loop call still watches its file descriptor.
        self._live_tasks -= 1
        if self._live_tasks == 0:
            self._sock.close()
            self._relay._forget_tasks(self._tasks)

    def _finish(self, reason: str) -> None:
        if self._done:
            return
        self._done = True
        self.reason = reason
        self._idle.cancel()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._outgoing.clear()
        self._buffered = 0
        self._session.connections.discard(self)
        logger.info(
            "egress %s:%d closed after %.2f s (in %d, out %d bytes): %s",
            self.host, self.port, time.monotonic() - self._started,
            self.bytes_in, self.bytes_out, reason,
        )  # fmt: skip
        self._sink.closed(reason)
        self._relay._audit_record(
            self.key, self.host, self.port, self.address, True, 200, reason,
            self.bytes_in, self.bytes_out, self._started,
        )  # fmt: skip
