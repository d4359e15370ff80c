"""Read a Docker exec's multiplexed output from its raw socket, with byte caps and a deadline.

docker-py's own readers are unsuitable: `exec_run(demux=True)` is quadratic in output size and
holds everything in memory; no reader of it has a deadline. Here each stream keeps at most its
cap and the rest is counted and dropped while the socket keeps being drained (an undrained,
unclosed exec stream wedges the container). Stdin, when given, is written as the socket allows
and then half-closed, so large uploads and output never deadlock each other.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

_HEADER = struct.Struct(">BxxxL")
_RECV_SIZE = 256 * 1024
_SEND_SIZE = 256 * 1024
_POLL_S = 0.25  # how often a long wait looks at the cancel flag


class StreamEnd(Enum):
    EOF = "eof"  # the exec finished and closed its output
    DEADLINE = "deadline"
    CANCELLED = "cancelled"
    FLOOD = "flood"  # more output than the flood limit


@dataclass
class CappedBuffer:
    """Keeps the first `limit` bytes written to it and counts the rest."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def feed(self, chunk: bytes | memoryview) -> None:
        room = self.limit - len(self.data)
        if room >= len(chunk):
            self.data += chunk
        else:
            if room > 0:
                self.data += chunk[:room]
            self.dropped += len(chunk) - max(room, 0)


class ExecStream:
    """One exec's hijacked connection: demultiplexes stdout/stderr frames into capped buffers."""

    def __init__(
        self,
        raw_socket: object,
        stdout_limit: int,
        stderr_limit: int,
        stdin: bytes | None = None,
    ) -> None:
        self._sock, initial = _unwrap(raw_socket)
        self._sock.setblocking(False)
        self.stdout = CappedBuffer(stdout_limit)
        self.stderr = CappedBuffer(stderr_limit)
        self.received = 0
        self._pending = bytearray()  # bytes of an incomplete frame header
        self._frame_left = 0
        self._frame_target: CappedBuffer | None = None
        self._stdin = memoryview(stdin) if stdin is not None else None
        self._stdin_sent = 0
        self._eof = False
        self.on_chunk: Callable[[str, bytes], None] | None = None  # live output, as it arrives
        if initial:
            self._consume(initial)
        if self._stdin is not None and len(self._stdin) == 0:
            self._close_stdin()

    def pump(
        self,
        deadline: float,
        *,
        cancel: threading.Event | None = None,
        flood_limit: int | None = None,
    ) -> StreamEnd:
        """Move bytes until the exec ends, the deadline passes, `cancel` is set or output floods."""
        while not self._eof:
            if flood_limit is not None and self.received > flood_limit:
                return StreamEnd.FLOOD
            if cancel is not None and cancel.is_set():
                return StreamEnd.CANCELLED
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return StreamEnd.DEADLINE
            want_write = self._stdin is not None and self._stdin_sent < len(self._stdin)
            wait = min(remaining, _POLL_S) if cancel is not None else remaining
            readable, writable, _ = select.select(
                [self._sock], [self._sock] if want_write else [], [], wait
            )
            if writable:
                self._send_some()
            if readable:
                self._recv_some()
        return StreamEnd.EOF

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def _send_some(self) -> None:
        assert self._stdin is not None
        try:
            sent = self._sock.send(self._stdin[self._stdin_sent : self._stdin_sent + _SEND_SIZE])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # the process stopped reading (exited): drop the rest of stdin
            sent = len(self._stdin) - self._stdin_sent
        self._stdin_sent += sent
        if self._stdin_sent >= len(self._stdin):
            self._close_stdin()

    def _close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def _recv_some(self) -> None:
        try:
            chunk = self._sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._eof = True
            return
        if not chunk:
            self._eof = True
            return
        self._consume(chunk)

    def _consume(self, chunk: bytes) -> None:
        self.received += len(chunk)
        view = memoryview(chunk)
        while view:
            if self._frame_left:
                take = min(self._frame_left, len(view))
                if self._frame_target is not None:
                    self._frame_target.feed(view[:take])
                    if self.on_chunk is not None:
                        name = "stdout" if self._frame_target is self.stdout else "stderr"
                        self.on_chunk(name, bytes(view[:take]))
                self._frame_left -= take
                view = view[take:]
                continue
            need = _HEADER.size - len(self._pending)
            self._pending += view[:need]
            view = view[need:]
            if len(self._pending) == _HEADER.size:
                stream_id, length = _HEADER.unpack(self._pending)
                self._pending.clear()
                self._frame_left = length
                self._frame_target = {1: self.stdout, 2: self.stderr}.get(stream_id)


def _unwrap(raw_socket: object) -> tuple[socket.socket, bytes]:
    """The plain socket under docker-py's hijacked response, plus bytes already buffered above it.

    http.client reads the response headers through a buffered reader that may have read past
    them; those bytes are exec output and must not be lost.
    """
    sock = getattr(raw_socket, "_sock", raw_socket)
    initial = b""
    response = getattr(raw_socket, "_response", None)
    buffered_reader = getattr(getattr(getattr(response, "raw", None), "_fp", None), "fp", None)
    if buffered_reader is not None and hasattr(buffered_reader, "peek"):
        sock.setblocking(False)
        try:
            available = len(buffered_reader.peek(0))
            if available:
                initial = buffered_reader.read(available)
        except (BlockingIOError, OSError, ValueError):
            initial = b""
    return sock, initial
