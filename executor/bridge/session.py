"""The host end of one request's pipes: the code-mode calls and egress connections that the
processes of one command (or one Python cell) open, checked, bounded, audited and ended with it.

Frames arrive from the runner channel's loop (a worker thread) and must never block it: calls
and connections run on the bridge loop (loop.py), and their answers go back through the outbox.
When the request ends (it finished, timed out, was stopped, or the session went away) every
outstanding call is cancelled and every connection closed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..results import EgressRecord, ToolCallRecord
from ..sandbox_side.protocol import (
    CALL,
    CALL_ARGS_MAX,
    CALL_RESULT_MAX,
    OPEN,
    REFUSED,
    REPLY,
    TO_HOST_CLOSE,
    TO_HOST_CREDIT,
    TO_HOST_DATA,
    TO_HOST_EOF,
    TO_HOST_PART,
    TO_RUNNER_PART,
)
from .contracts import CallContext, CallOutcome
from .egress import EgressPipe
from .pipes import Frame, Outbox, refusal
from .services import BridgeServices

logger = logging.getLogger(__name__)

MAX_CALLS_AT_ONCE = 64  # per request; more are refused at once
NO_SERVERS = (
    "no MCP servers are configured for this app (APP_MCP_SERVERS_FILE names the file that "
    "lists them)"
)


@dataclass
class PipeRecords:
    """What one request's processes did through the bridge, for its result."""

    calls: list[ToolCallRecord] = field(default_factory=list)
    connections: list[EgressRecord] = field(default_factory=list)


def _encode(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer, ensure_ascii=False).encode("utf-8", "surrogatepass")


class RequestPipes:
    """The PipeHost of one request (see pipes.py)."""

    def __init__(
        self, services: BridgeServices, ctx: CallContext, tags: dict[str, str] | None = None
    ) -> None:
        self.services = services
        self.context = ctx
        self._tags = tags or {}
        self._outbox = Outbox()
        self._parts: dict[int, bytearray] = {}
        self._oversized: set[int] = set()
        self._calls: dict[int, concurrent.futures.Future[None]] = {}
        self._connections: dict[int, Any] = {}  # pid -> EgressPipe (egress.py)
        self._lock = threading.Lock()
        self._ended = False
        self.records = PipeRecords()

    @property
    def wake_fd(self) -> int | None:
        return self._outbox.wake_fd

    def outgoing(self) -> list[Frame]:
        return self._outbox.take()

    # -- frames from the runner ------------------------------------------------------------

    def received(self, kind: int, pid: int, payload: bytes) -> None:
        if self._ended:
            return
        self._outbox.open()  # here, on the request's thread: its next wait watches the pipe
        if kind == TO_HOST_PART:
            self._add_part(pid, payload)
        elif kind == CALL:
            self._start_call(pid, self._assemble(pid, payload))
        elif kind == OPEN:
            self._open(pid, payload)
        elif kind in (TO_HOST_DATA, TO_HOST_CREDIT, TO_HOST_EOF, TO_HOST_CLOSE):
            connection = self._connections.get(pid)
            if connection is not None:
                connection.from_sandbox(kind, payload)

    def _add_part(self, pid: int, payload: bytes) -> None:
        if pid in self._oversized:
            return
        held = self._parts.setdefault(pid, bytearray())
        held += payload
        if len(held) > CALL_ARGS_MAX:
            del self._parts[pid]
            self._oversized.add(pid)

    def _assemble(self, pid: int, payload: bytes) -> bytes | None:
        if pid in self._oversized:
            self._oversized.discard(pid)
            return None
        body = bytes(self._parts.pop(pid, b"")) + payload
        return None if len(body) > CALL_ARGS_MAX else body

    # -- calls -----------------------------------------------------------------------------

    def _answer(self, pid: int, answer: dict[str, Any] | bytes) -> int:
        """Send an answer (a dict, or one already encoded); its size in bytes."""
        encoded = answer if isinstance(answer, bytes) else _encode(answer)
        self._outbox.put_message(TO_RUNNER_PART, REPLY, pid, encoded)
        return len(encoded)

    def _start_call(self, pid: int, body: bytes | None) -> None:
        if body is None:
            error = f"the call's arguments are over the {CALL_ARGS_MAX:,}-byte limit (as JSON)"
            self._answer(pid, {"ok": False, "error": error})
            self._record_call("?", "?", 0.0, CALL_ARGS_MAX, 0, error)
            return
        try:
            message = json.loads(body)
            server, tool = message["server"], message["tool"]
            arguments = message.get("arguments") or {}
            if not (isinstance(server, str) and isinstance(tool, str)):
                raise TypeError("server and tool must be strings")
            if not isinstance(arguments, dict):
                raise TypeError("arguments must be an object")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._answer(pid, {"ok": False, "error": f"a malformed call ({exc})"})
            return
        if self.services.tools is None:
            self._answer(pid, {"ok": False, "error": NO_SERVERS})
            self._record_call(server, tool, 0.0, len(body), 0, NO_SERVERS)
            return
        with self._lock:
            if len(self._calls) >= MAX_CALLS_AT_ONCE:
                error = f"more than {MAX_CALLS_AT_ONCE} calls at once from one command"
                self._answer(pid, {"ok": False, "error": error})
                return
            future = self.services.loop.submit(self._call(pid, server, tool, arguments, body))
            self._calls[pid] = future
        future.add_done_callback(lambda _f, pid=pid: self._forget_call(pid))

    def _forget_call(self, pid: int) -> None:
        with self._lock:
            self._calls.pop(pid, None)

    async def _call(
        self, pid: int, server: str, tool: str, arguments: dict[str, Any], body: bytes
    ) -> None:
        started = time.monotonic()
        timeout = self.services.call_timeout_s
        tools = self.services.tools
        assert tools is not None
        try:
            outcome = await asyncio.wait_for(
                tools.call(self.context, server, tool, arguments), timeout
            )
        except TimeoutError:
            outcome = CallOutcome(
                False, error=f"{server}.{tool} did not answer within {timeout:g} s"
            )
        except asyncio.CancelledError:
            self._record_call(server, tool, started, len(body), 0, "cancelled: the command ended")
            raise
        except Exception as exc:
            logger.exception("code-mode call %s.%s failed", server, tool)
            outcome = CallOutcome(
                False, error=f"internal error in code mode ({type(exc).__name__})"
            )
        answer: dict[str, Any] = (
            {"ok": True, "value": outcome.value}
            if outcome.ok
            else {"ok": False, "error": outcome.error or "the call failed"}
        )
        try:
            encoded: dict[str, Any] | bytes = _encode(answer)  # once: it may be 16 MiB
        except (TypeError, ValueError) as exc:
            answer = encoded = {"ok": False, "error": f"the result is not JSON ({exc})"}
        if isinstance(encoded, bytes) and len(encoded) > CALL_RESULT_MAX:
            size = len(encoded)
            error = f"the result is {size:,} bytes of JSON, over the {CALL_RESULT_MAX:,}-byte limit"
            answer = encoded = {"ok": False, "error": error}
        sent = self._answer(pid, encoded)
        self._record_call(server, tool, started, len(body), sent, answer.get("error", ""))

    def _record_call(
        self, server: str, tool: str, started: float, bytes_in: int, bytes_out: int, error: str
    ) -> None:
        duration = time.monotonic() - started if started else 0.0
        record = ToolCallRecord(server, tool, round(duration, 4), not error, error[:500])
        with self._lock:
            self.records.calls.append(record)
        self.services.audit.record(
            self.context.key,
            "mcp_call",
            f"{server}.{tool}",
            duration_s=duration,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            error=error or None,
            tags=self._tags,
        )

    # -- egress ----------------------------------------------------------------------------

    def _open(self, pid: int, payload: bytes) -> None:
        relay = self.services.relay
        if relay is None:
            body = refusal("egress is off for this app (EXECUTOR_EGRESS_ALLOW is empty)")
            self._outbox.put(REFUSED, pid, body)
            return
        pipe = EgressPipe(self, pid)
        self._connections[pid] = pipe
        pipe.start(payload)

    def connection_ended(self, pid: int, record: EgressRecord | None) -> None:
        """An egress pipe is over (called by it, on the bridge loop)."""
        self._connections.pop(pid, None)
        if record is not None:
            with self._lock:
                self.records.connections.append(record)

    def send(self, kind: int, pid: int, payload: bytes = b"") -> None:
        """A frame for the runner (any thread)."""
        self._outbox.put(kind, pid, payload)

    # -- the end ---------------------------------------------------------------------------

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        with self._lock:
            calls = list(self._calls.values())
        for future in calls:
            future.cancel()
        for pipe in list(self._connections.values()):
            pipe.abort("the command ended")
        self._outbox.close()
