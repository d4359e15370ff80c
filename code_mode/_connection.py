"""One configured MCP server's client session, shared by every call to it (on the hub's loop).

Lifecycle: `not started` -> `starting` -> `ready` -> (`stopped` when idle or at shutdown |
`failed` when it could not start, its process died or its connection broke). The next call
after `stopped` or `failed` starts it again. Each start is a `_Session` owned by one keeper task
(anyio scopes must be entered and left in one task); calls run in their callers' tasks,
multiplexed by the SDK's dispatcher over that one session. A session that is lost is dropped at
once (the next call starts a new one) and wound down in the background; only the current
session may change what reports show.

A call that times out leaves the server in doubt: a short tools/list probe follows, and a
server that does not answer it is restarted rather than left wedged for the next caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from ._stdio import TOO_LARGE_CODE, StdioParams, StdioTransport
from .catalog import ServerListing, ToolSpec
from .config import ServerConfig
from .errors import ServerUnavailableError, ToolCallError
from .results import too_large

logger = logging.getLogger(__name__)

CLIENT_INFO = types.Implementation(name="mcp-code-executor", version="0.1.0")
_PROBE_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 10.0
_MAX_PAGES = 100
_LOST = (
    httpx2.TransportError,
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)


def _fail(future: asyncio.Future[Any] | None, exc: BaseException) -> None:
    """Fail a start's future (if still open), marked as seen: nobody may be waiting on it."""
    if future is not None and not future.done():
        future.set_exception(exc)
        future.exception()


def _describe(exc: BaseException) -> str:
    """A one-line reading of an exception (exception groups: their first leaf)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(eq=False)
class _Session:
    """One start of the server: its keeper task, client, transport and fate."""

    ready: asyncio.Future[Client]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    keeper: asyncio.Task[None] | None = None
    client: Client | None = None
    transport: StdioTransport | None = None
    lost_reason: str = ""
    ready_at: float = 0.0
    http_error: str = ""  # the last HTTP error status an http server answered with
    stopped_for: str = ""  # why it was stopped on purpose (idle, shutdown, ...)


class ServerConnection:
    """The session to one server; every coroutine here runs on the hub's loop."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        redact: Callable[[str], str],
        on_listing: Callable[[ServerListing], None],
        result_limit: int,
        start_timeout_s: float,
        call_timeout_s: float,
    ) -> None:
        self.config = config
        self.redact = redact
        self.on_listing = on_listing
        self.result_limit = result_limit
        # fastmcp sends a structured result twice (text and structuredContent): one message may
        # be twice a result; longer ones are dropped unread.
        self.max_message_bytes = 2 * result_limit + (1 << 20)
        self.start_timeout_s = start_timeout_s
        self.call_timeout_s = call_timeout_s
        # what reports show
        self.state = "not started"
        self.last_error = ""
        self.last_used: float | None = None
        self.tool_count: int | None = None
        self.starts = 0
        self.in_flight = 0
        self._session: _Session | None = None
        self._winding_down: set[asyncio.Task[None]] = set()
        self._probing = False

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def pid(self) -> int | None:
        session = self._session
        if session is None or session.transport is None or self.state != "ready":
            return None
        return session.transport.pid

    @property
    def _transport(self) -> StdioTransport | None:
        return self._session.transport if self._session else None

    def _current(self, session: _Session) -> bool:
        return self._session is session

    # -- starting ------------------------------------------------------------------------------
    async def ensure(self) -> Client:
        """The ready session, started (or restarted) if need be.

        Raises:
            ServerUnavailableError: it could not be started within start_timeout_s.
        """
        session = self._session
        if session is not None and session.client is not None and self.state == "ready":
            if session.transport is None or not session.transport.exited.is_set():
                return session.client
            self._drop(session, self._exit_reason(session))  # died since: start anew
        if session is None or session.ready.done():
            session = _Session(ready=asyncio.get_running_loop().create_future())
            self._session = session
            self.state = "starting"
            self.starts += 1
            session.keeper = asyncio.create_task(self._keep(session))
        try:
            async with asyncio.timeout(self.start_timeout_s):
                return await asyncio.shield(session.ready)
        except TimeoutError:
            if session.ready.done():
                return await session.ready  # finished just now
            reason = f"it did not answer within {self.start_timeout_s:g} s of starting"
            self._drop(session, reason)
            raise ServerUnavailableError(self._unavailable(reason)) from None

    def _unavailable(self, reason: str) -> str:
        return self.redact(f"MCP server {self.name!r} could not be started: {reason}")

    def _drop(self, session: _Session, reason: str, state: str = "failed") -> None:
        """Let go of a session now (the next call starts anew); it winds down in the background."""
        session.lost_reason = session.lost_reason or reason
        if state == "stopped":
            session.stopped_for = session.stopped_for or reason
        _fail(session.ready, ServerUnavailableError(self._unavailable(reason)))
        if self._current(session):
            self.state = state
            if state == "failed":
                self.last_error = self.redact(reason)
        session.client = None
        if session.keeper is not None and not session.keeper.done():
            if not session.ready.done() or session.ready.exception() is not None:
                session.keeper.cancel()  # still starting: nothing to wind down politely
            session.wake.set()
            self._winding_down.add(session.keeper)
            session.keeper.add_done_callback(self._winding_down.discard)

    def _open(self, session: _Session) -> tuple[Any, contextlib.AsyncExitStack]:
        stack = contextlib.AsyncExitStack()
        if self.config.transport == "stdio":
            session.transport = StdioTransport(
                StdioParams(
                    self.config.command, self.config.args, dict(self.config.env), self.config.cwd
                ),
                max_message_bytes=self.max_message_bytes,
                label=self.name,
                redact=self.redact,
            )
            return session.transport, stack
        http = create_mcp_http_client(
            headers=dict(self.config.headers),
            timeout=httpx2.Timeout(30.0, read=self.call_timeout_s + 30.0),
        )
        stack.push_async_callback(http.aclose)

        async def remember(response: httpx2.Response) -> None:
            if response.status_code >= 400:
                session.http_error = f"HTTP {response.status_code} {response.reason_phrase}"

        http.event_hooks["response"].append(remember)
        transport = streamable_http_client(
            self.config.url, http_client=http, max_sse_event_size=self.max_message_bytes
        )
        return transport, stack

    async def _keep(self, session: _Session) -> None:
        """Own one session from start to stop (the keeper task)."""
        transport, stack = self._open(session)
        try:
            async with stack:
                client = Client(
                    transport,
                    mode="auto",
                    cache=None,
                    client_info=CLIENT_INFO,
                    message_handler=self._on_message,
                )
                async with client:
                    listing = await self._list(client)
                    if not self._current(session) or session.ready.done():
                        return  # given up on meanwhile
                    session.client = client
                    session.ready_at = time.time()
                    self.state, self.last_error = "ready", ""
                    self.tool_count = len(listing.tools)
                    session.ready.set_result(client)
                    logger.info(
                        "MCP server %s ready (%s, %d tools%s)",
                        self.name,
                        self.config.transport,
                        len(listing.tools),
                        f", pid {session.transport.pid}" if session.transport else "",
                    )
                    self.on_listing(listing)
                    await self._wait(session)
                    session.client = None
        except Exception as exc:  # noqa: BLE001 - a third-party server's failure ends only its session
            reason = self._failure(session, exc)  # redacted: no traceback, it may hold a secret
            logger.warning("MCP server %s failed: %s", self.name, reason)
            self._drop(session, reason)
        finally:
            session.client = None
            _fail(session.ready, ServerUnavailableError(self._unavailable("it stopped")))

    async def _wait(self, session: _Session) -> None:
        """Until the session is let go of, or the server is lost (its process exits)."""
        waits = [asyncio.ensure_future(session.wake.wait())]
        if session.transport is not None:
            waits.append(asyncio.ensure_future(session.transport.exited.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        if not session.wake.is_set():  # the process went away by itself
            reason = self._exit_reason(session)
            logger.warning("MCP server %s lost: %s", self.name, self.redact(reason))
            self._drop(session, reason)

    def _exit_reason(self, session: _Session) -> str:
        transport = session.transport
        if transport is None:
            return "the connection was lost"
        if transport.oversized:
            return (
                f"it sent a message of {transport.oversized[-1]:,} bytes, over the limit of "
                f"{self.max_message_bytes:,}, that answered no request we could tell"
            )
        code = transport.returncode
        tail = transport.stderr_tail(3)
        reason = "its process exited" + (f" (exit code {code})" if code is not None else "")
        return reason + (f"; stderr: {tail}" if tail else "")

    def _failure(self, session: _Session, exc: BaseException) -> str:
        reason = _describe(exc)
        if session.http_error:
            reason = f"the server answered {session.http_error} ({reason})"
            if session.http_error.split()[1] in {"401", "403"}:
                reason += "; check the headers (e.g. the token) in the servers file"
        transport = session.transport
        if transport is not None:
            tail = transport.stderr_tail(3)
            if transport.returncode is not None:
                reason = f"its process exited (exit code {transport.returncode}); {reason}"
            if tail:
                reason += f"; stderr: {tail}"
        return self.redact(reason)

    async def _list(self, client: Client) -> ServerListing:
        tools: list[ToolSpec] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools += [
                ToolSpec(
                    name=t.name,
                    description=t.description or "",
                    input_schema=dict(t.input_schema or {}),
                    output_schema=dict(t.output_schema) if t.output_schema else None,
                    title=t.title or "",
                )
                for t in page.tools
            ]
            cursor = page.next_cursor
            if not cursor:
                break
        info = client.server_info
        return ServerListing(
            server=self.name,
            fingerprint=self.config.fingerprint,
            tools=tuple(tools),
            instructions=client.instructions or "",
            title=(info.title or info.name or "") if info else "",
            listed_at=time.time(),
        )

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            asyncio.get_running_loop().create_task(self._relist())
        elif isinstance(message, Exception):
            logger.debug("MCP server %s: transport error %s", self.name, _describe(message))

    async def _relist(self) -> None:
        session = self._session
        client = session.client if session else None
        if client is None:
            return
        try:
            listing = await self._list(client)
        except (MCPError, *_LOST) as exc:
            logger.info("MCP server %s: could not list its changed tools: %s", self.name, exc)
            return
        self.tool_count = len(listing.tools)
        self.on_listing(listing)

    # -- calling -------------------------------------------------------------------------------
    async def call(self, tool: str, arguments: dict[str, Any], timeout_s: float) -> Any:
        """One tools/call on the shared session; returns the SDK's CallToolResult.

        Raises:
            ServerUnavailableError: the server could not be started.
            ToolCallError: the call failed (timed out, server lost, protocol error).
        """
        client = await self.ensure()
        session = self._session
        assert session is not None
        self.in_flight += 1
        self.last_used = time.time()
        session.http_error = ""
        try:
            return await client.call_tool(tool, arguments, read_timeout_seconds=timeout_s)
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                self._probe_soon(session, client)
                raise ToolCallError(
                    f"{self.name}.{tool} did not answer within {timeout_s:g} s "
                    "(APP_MCP_CALL_TIMEOUT_S); it was cancelled"
                ) from None
            if exc.code == types.CONNECTION_CLOSED:
                raise ToolCallError(await self._lost_during_call(session, tool)) from None
            if exc.code == TOO_LARGE_CODE:
                size = (exc.error.data or {}).get("size", 0)
                raise ToolCallError(
                    too_large(f"{self.name}.{tool}", size, self.result_limit)
                    + "; it was dropped unread"
                ) from None
            status = f" ({session.http_error})" if session.http_error else ""
            raise ToolCallError(
                self.redact(
                    f"{self.name}.{tool} was refused by the server{status}: {exc.error.message}"
                )
            ) from None
        except _LOST as exc:
            self._drop(session, f"the connection broke during a call ({_describe(exc)})")
            raise ToolCallError(await self._lost_during_call(session, tool)) from None
        except RuntimeError as exc:  # the SDK's checks of a result (e.g. its output schema)
            raise ToolCallError(self.redact(f"{self.name}.{tool}: {exc}")) from None
        finally:
            self.in_flight -= 1
            self.last_used = time.time()

    async def _lost_during_call(self, session: _Session, tool: str) -> str:
        if session.stopped_for:
            why = session.stopped_for
            return f"MCP server {self.name!r} was stopped ({why}) during the call to {tool}"
        transport = session.transport
        if transport is None:
            self._drop(session, "the connection was lost during a call")
            return (
                f"the connection to MCP server {self.name!r} was lost during the call to {tool}; "
                "it is opened again on the next call"
            )
        await transport.wait_exit(1.0)  # let the process's exit be seen, for its code
        self._drop(session, self._exit_reason(session))
        if transport.oversized:
            return (
                too_large(f"{self.name}.{tool}", transport.oversized[-1], self.result_limit)
                + "; the connection was reset and the server is started again on the next call"
            )
        code = transport.returncode
        ended = f"exited (exit code {code})" if code is not None else "closed its output"
        return (
            f"MCP server {self.name!r} {ended} during the call to {tool}; it is started again "
            "on the next call"
        )

    def _probe_soon(self, session: _Session, client: Client) -> None:
        if self._probing:
            return
        self._probing = True
        asyncio.get_running_loop().create_task(self._probe(session, client))

    async def _probe(self, session: _Session, client: Client) -> None:
        """After a timed-out call: a server that cannot answer tools/list is restarted."""
        try:
            with anyio.fail_after(_PROBE_TIMEOUT_S):
                await client.list_tools()
        except (TimeoutError, MCPError, *_LOST) as exc:
            if session.client is client:
                logger.warning(
                    "MCP server %s did not answer after a call timed out (%s): restarting it",
                    self.name,
                    _describe(exc),
                )
                self._drop(
                    session,
                    "it stopped answering (a call timed out, then tools/list did too); "
                    "restarted on the next call",
                )
        finally:
            self._probing = False

    # -- stopping ------------------------------------------------------------------------------
    def idle_since(self) -> float | None:
        """Since when a ready server has had nothing to do (its last call's end, or its start);
        None while it is busy or not running."""
        session = self._session
        if session is None or self.state != "ready" or self.in_flight:
            return None
        return max(self.last_used or 0.0, session.ready_at)

    async def stop(self, reason: str = "stopped") -> None:
        """End the session (and the process) and wait for it; the next call starts anew."""
        session = self._session
        if session is not None and session.keeper is not None and not session.keeper.done():
            self._drop(session, reason, state="stopped")
            logger.info("MCP server %s stopping (%s)", self.name, reason)
        elif self.state in {"ready", "starting"}:
            self.state = "stopped"
        keepers = list(self._winding_down)
        if keepers:
            _done, pending = await asyncio.wait(keepers, timeout=_STOP_TIMEOUT_S)
            for keeper in pending:
                keeper.cancel()
            if pending:
                await asyncio.wait(pending)
