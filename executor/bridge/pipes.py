"""The host end of a request's pipes, as the runner channel sees it (protocol in
`executor/sandbox_side/protocol.py`): frames in from the request loop, frames out through an
outbox whose wake descriptor interrupts the loop's wait.

`RefusingPipes` answers every pipe with a refusal: requests that must not open any (file
operations) and sandboxes with neither code mode nor egress use it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import threading
from typing import Protocol

from ..sandbox_side.protocol import (
    CALL,
    OPEN,
    PART_SIZE,
    REFUSED,
    REPLY,
    TO_HOST_CLOSE,
    TO_HOST_CREDIT,
    TO_HOST_DATA,
    TO_HOST_EOF,
    TO_HOST_PART,
)

# What the runner may send about pipes (host-bound kinds).
PIPE_KINDS = frozenset(
    {CALL, OPEN, TO_HOST_DATA, TO_HOST_CREDIT, TO_HOST_EOF, TO_HOST_CLOSE, TO_HOST_PART}
)

Frame = tuple[int, int, bytes]  # kind, pipe id, payload


class PipeHost(Protocol):
    """The host end of one request's pipes."""

    @property
    def wake_fd(self) -> int | None:
        """Readable whenever `outgoing` has frames (the loop waits on it with the channel);
        None while the request has opened no pipe."""
        ...

    def received(self, kind: int, pid: int, payload: bytes) -> None:
        """A pipe frame from the runner (must not block)."""
        ...

    def outgoing(self) -> list[Frame]:
        """The frames to send the runner now (empties the outbox)."""
        ...

    def end(self) -> None:
        """The request is over: end every pipe (idempotent)."""
        ...


class Outbox:
    """Frames for the runner, queued from any thread; the wake pipe says there are some.

    The pipe is made when the request's first pipe frame arrives (`open`, on the request's own
    thread): most commands open no pipe, and then cost no descriptors at all."""

    def __init__(self) -> None:
        self._frames: collections.deque[Frame] = collections.deque()
        self._read = self._write = -1
        self._lock = threading.Lock()
        self._closed = False

    @property
    def wake_fd(self) -> int | None:
        return self._read if self._read >= 0 else None

    def open(self) -> None:
        with self._lock:
            if self._read < 0 and not self._closed:
                self._read, self._write = os.pipe()
                os.set_blocking(self._read, False)
                os.set_blocking(self._write, False)

    def put(self, kind: int, pid: int, payload: bytes = b"") -> None:
        self._queue([(kind, pid, payload)])

    def put_message(self, part_kind: int, kind: int, pid: int, payload: bytes) -> None:
        """A message of any size: PART frames with its first pieces, then `kind`."""
        pieces = [payload[i : i + PART_SIZE] for i in range(0, len(payload), PART_SIZE)] or [b""]
        self._queue([(part_kind, pid, p) for p in pieces[:-1]] + [(kind, pid, pieces[-1])])

    def _queue(self, frames: list[Frame]) -> None:
        self.open()
        with self._lock:
            if self._closed:
                return
            self._frames.extend(frames)
            with contextlib.suppress(BlockingIOError):
                os.write(self._write, b"x")

    def take(self) -> list[Frame]:
        if self._read < 0:
            return []
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass
        with self._lock:
            frames = list(self._frames)
            self._frames.clear()
        return frames

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._frames.clear()
        for fd in (self._read, self._write):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def refusal(why: str, *, status: int = 403) -> bytes:
    """The REFUSED payload: an HTTP status and the reason; the runner words the answer (its
    reason phrase names the host, why, and EXECUTOR_EGRESS_ALLOW for a 403)."""
    return json.dumps({"status": status, "reason": why[:200]}).encode()


class RefusingPipes:
    """Refuses every call and connection at once, saying why."""

    def __init__(self, why: str = "") -> None:
        self._outbox = Outbox()
        self._why = why or "code mode and egress are not available for this kind of request"

    @property
    def wake_fd(self) -> int | None:
        return self._outbox.wake_fd

    def received(self, kind: int, pid: int, payload: bytes) -> None:
        if kind == CALL:
            answer = json.dumps({"ok": False, "error": self._why}).encode()
            self._outbox.put(REPLY, pid, answer)
        elif kind == OPEN:
            self._outbox.put(REFUSED, pid, refusal(self._why))

    def outgoing(self) -> list[Frame]:
        return self._outbox.take()

    def end(self) -> None:
        self._outbox.close()
