"""One egress pipe on the host: the frames of a proxy connection in the sandbox, turned into an
`EgressConnection` of the relay (executor/egress/relay.py) and back.

The relay decides and dials on the bridge loop; this adapter moves the sandbox's bytes to it and
the peer's bytes, credits and end to the runner, within the protocol's window each way. A
refusal goes back as an HTTP error whose reason phrase names the host, why, and the setting
(pip, requests and curl often show only that phrase), and as a record in the command's result.
"""

from __future__ import annotations

import json
import struct
import time
from typing import TYPE_CHECKING, Any

from ..results import EgressRecord
from ..sandbox_side.protocol import (
    OPENED,
    REFUSED,
    TO_HOST_CLOSE,
    TO_HOST_CREDIT,
    TO_HOST_DATA,
    TO_HOST_EOF,
    TO_RUNNER_CLOSE,
    TO_RUNNER_CREDIT,
    TO_RUNNER_DATA,
    TO_RUNNER_EOF,
    WINDOW,
)
from .pipes import refusal

if TYPE_CHECKING:
    from .session import RequestPipes

_COUNT = struct.Struct(">I")


class EgressPipe:
    """The host end of one proxy connection (also the relay's sink for it)."""

    def __init__(self, pipes: RequestPipes, pid: int) -> None:
        self._pipes = pipes
        self._pid = pid
        self._conn: Any = None
        self._early: list[tuple[int, bytes]] = []  # sandbox frames before the dial finished
        self._aborted = ""
        self._over = False
        self._started = time.monotonic()
        self.host, self.port = "", 0
        self.up = self.down = 0

    # -- from the request loop (a worker thread) ------------------------------------------

    def start(self, payload: bytes) -> None:
        try:
            request = json.loads(payload)
            self.host, self.port = str(request["host"]), int(request["port"])
        except (ValueError, KeyError, TypeError):
            self._pipes.send(REFUSED, self._pid, refusal("a malformed request", status=400))
            self._pipes.connection_ended(self._pid, None)
            return
        self._pipes.services.loop.submit(self._open())

    def from_sandbox(self, kind: int, payload: bytes) -> None:
        self._pipes.services.loop.call_soon(self._deliver, kind, payload)

    def abort(self, why: str) -> None:
        """The request ended: close the connection (on the loop)."""
        self._pipes.services.loop.call_soon(self._deliver, TO_HOST_CLOSE, why.encode())

    # -- on the bridge loop ----------------------------------------------------------------

    async def _open(self) -> None:
        relay = self._pipes.services.relay
        result = await relay.open(self._pipes.context.key, self.host, self.port, self)
        if not hasattr(result, "send"):  # a Refusal
            self._pipes.send(REFUSED, self._pid, refusal(result.reason, status=result.status))
            self._finish(EgressRecord(self.host, self.port, False, result.reason))
            return
        if self._aborted:
            result.close(self._aborted)
            return
        self._conn = result
        self._pipes.send(OPENED, self._pid)
        result.grant(WINDOW)  # what the runner's side can hold before it credits
        for kind, payload in self._early:
            self._deliver(kind, payload)
        self._early.clear()

    def _deliver(self, kind: int, payload: bytes) -> None:
        conn = self._conn
        if conn is None:
            if kind == TO_HOST_CLOSE:
                self._aborted = payload.decode("utf-8", "replace") or "closed by the sandbox"
            else:
                self._early.append((kind, payload))
            return
        if kind == TO_HOST_DATA:
            self.up += len(payload)
            conn.send(payload)
        elif kind == TO_HOST_CREDIT and len(payload) == _COUNT.size:
            conn.grant(_COUNT.unpack(payload)[0])
        elif kind == TO_HOST_EOF:
            conn.shutdown_write()
        elif kind == TO_HOST_CLOSE:
            why = payload.decode("utf-8", "replace")
            conn.close("done" if why == "done" else why or "closed by the sandbox")

    # -- the relay's sink --------------------------------------------------------------------

    def data(self, data: bytes) -> None:
        self.down += len(data)
        self._pipes.send(TO_RUNNER_DATA, self._pid, data)

    def written(self, n: int) -> None:
        self._pipes.send(TO_RUNNER_CREDIT, self._pid, _COUNT.pack(n))

    def eof(self) -> None:
        self._pipes.send(TO_RUNNER_EOF, self._pid)

    def closed(self, reason: str) -> None:
        normal = reason == "done"
        if not normal:  # a normal end is the runner's to close, once it has passed every byte
            self._pipes.send(TO_RUNNER_CLOSE, self._pid, reason.encode()[:200])
        duration = round(time.monotonic() - self._started, 4)
        early = "" if normal or reason.startswith("closed by") else reason
        record = EgressRecord(
            self.host, self.port, True, early, self.up, self.down, duration_s=duration
        )
        self._finish(record)

    def _finish(self, record: EgressRecord | None) -> None:
        if not self._over:
            self._over = True
            self._pipes.connection_ended(self._pid, record)
