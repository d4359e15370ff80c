"""One configured MCP server's client session, shared by every call to it (on the hub's loop).

Lifecycle: `not started` -> `starting` -> `ready` -> (`stopped` when idle or at shutdown |
`failed` when it could not start, its process died or its connection broke). The next call
after `stopped` or `failed` starts it again. One keeper task owns the session (anyio scopes
must be entered and left in one task); calls run in their callers' tasks, multiplexed by the
SDK's dispatcher over that one session.

A call that times out leaves the server in doubt: a short tools/list probe follows, and a
server that does not answer it is restarted rather than left wedged for the next caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
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


class ServerConnection:
    """The session to one server; every coroutine here runs on the hub's loop."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        redact: Callable[[str], str],
        on_listing: Callable[[ServerListing], None],
        max_message_bytes: int,
        start_timeout_s: float,
        call_timeout_s: float,
    ) -> None:
        self.config = config
        self.redact = redact
        self.on_listing = on_listing
        self.max_message_bytes = max_message_bytes
        self.start_timeout_s = start_timeout_s
        self.call_timeout_s = call_timeout_s
        # what reports show
        self.state = "not started"
        self.last_error = ""
        self.last_used: float | None = None
        self.tool_count: int | None = None
        self.pid: int | None = None
        self.starts = 0
        self.in_flight = 0
        # the session
        self._client: Client | None = None
        self._transport: StdioTransport | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[Client] | None = None
        self._wake: asyncio.Event | None = None
        self._lost_reason = ""
        self._probing = False
        self._ready_at = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    # -- starting ------------------------------------------------------------------------------
    async def ensure(self) -> Client:
        """The ready session, started (or restarted) if need be.

        Raises:
            ServerUnavailableError: it could not be started within start_timeout_s.
        """
        if self._client is not None and self.state == "ready":
            return self._client
        if self._ready is None or self._ready.done():
            loop = asyncio.get_running_loop()
            self._ready = loop.create_future()
            self._wake = asyncio.Event()
            self._lost_reason = ""
            self.state = "starting"
            self.starts += 1
            self._keeper = asyncio.create_task(self._keep(self._ready, self._wake))
        ready = self._ready
        try:
            async with asyncio.timeout(self.start_timeout_s):
                return await asyncio.shield(ready)
        except TimeoutError:
            if not ready.done():
                reason = f"it did not answer within {self.start_timeout_s:g} s of starting"
                await self._give_up(reason)
                raise ServerUnavailableError(self._unavailable(reason)) from None
            return await ready  # finished just now

    def _unavailable(self, reason: str) -> str:
        return self.redact(f"MCP server {self.name!r} could not be started: {reason}")

    async def _give_up(self, reason: str) -> None:
        self.state, self.last_error = "failed", self.redact(reason)
        _fail(self._ready, ServerUnavailableError(self._unavailable(reason)))
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.wait([self._keeper])

    def _open(self) -> tuple[Any, contextlib.AsyncExitStack]:
        stack = contextlib.AsyncExitStack()
        self._transport = None
        if self.config.transport == "stdio":
            self._transport = StdioTransport(
                StdioParams(
                    self.config.command, self.config.args, dict(self.config.env), self.config.cwd
                ),
                max_message_bytes=self.max_message_bytes,
                label=self.name,
            )
            return self._transport, stack
        http = create_mcp_http_client(
            headers=dict(self.config.headers),
            timeout=httpx2.Timeout(30.0, read=self.call_timeout_s + 30.0),
        )
        stack.push_async_callback(http.aclose)
        transport = streamable_http_client(
            self.config.url, http_client=http, max_sse_event_size=self.max_message_bytes
        )
        return transport, stack

    async def _keep(self, ready: asyncio.Future[Client], wake: asyncio.Event) -> None:
        """Own the session from start to stop (the keeper task)."""
        transport, stack = self._open()
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
                    self.pid = self._transport.pid if self._transport else None
                    listing = await self._list(client)
                    self._client = client
                    self.state, self.last_error = "ready", ""
                    self._ready_at = time.time()
                    if not ready.done():
                        ready.set_result(client)
                    logger.info(
                        "MCP server %s ready (%s, %d tools%s)",
                        self.name,
                        self.config.transport,
                        len(listing.tools),
                        f", pid {self.pid}" if self.pid else "",
                    )
                    self.on_listing(listing)
                    await self._wait(wake)
                    self._client = None
        except asyncio.CancelledError:
            self._client = None
            raise
        except Exception as exc:  # any failure of a third-party server ends only its session
            reason = self._failure(exc)
            self.state, self.last_error = "failed", reason
            logger.warning("MCP server %s failed: %s", self.name, reason, exc_info=True)
            _fail(ready, ServerUnavailableError(self._unavailable(reason)))
        finally:
            self._client = None
            self.pid = None
            _fail(ready, ServerUnavailableError(self._unavailable("it stopped")))
        if self._lost_reason:
            self.state, self.last_error = "failed", self.redact(self._lost_reason)
            logger.warning("MCP server %s lost: %s", self.name, self.last_error)

    async def _wait(self, wake: asyncio.Event) -> None:
        """Until stop() or the server is lost (its process exits)."""
        waits = [asyncio.ensure_future(wake.wait())]
        if self._transport is not None:
            waits.append(asyncio.ensure_future(self._transport.exited.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        if self._transport is not None and self._transport.exited.is_set() and not wake.is_set():
            self._lost_reason = self._lost_reason or self._exit_reason()

    def _exit_reason(self) -> str:
        transport = self._transport
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

    def _failure(self, exc: BaseException) -> str:
        reason = _describe(exc)
        if self._transport is not None:
            tail = self._transport.stderr_tail(3)
            if self._transport.returncode is not None:
                reason = f"its process exited (exit code {self._transport.returncode}); {reason}"
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
        self.tool_count = len(tools)
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
        client = self._client
        if client is None:
            return
        try:
            self.on_listing(await self._list(client))
        except (MCPError, *_LOST) as exc:
            logger.info("MCP server %s: could not list its changed tools: %s", self.name, exc)

    # -- calling -------------------------------------------------------------------------------
    async def call(self, tool: str, arguments: dict[str, Any], timeout_s: float) -> Any:
        """One tools/call on the shared session; returns the SDK's CallToolResult.

        Raises:
            ServerUnavailableError: the server could not be started.
            ToolCallError: the call failed (timed out, server lost, protocol error).
        """
        client = await self.ensure()
        transport = self._transport
        self.in_flight += 1
        self.last_used = time.time()
        try:
            return await client.call_tool(tool, arguments, read_timeout_seconds=timeout_s)
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                self._probe_soon(client)
                raise ToolCallError(
                    f"{self.name}.{tool} did not answer within {timeout_s:g} s "
                    "(APP_MCP_CALL_TIMEOUT_S); it was cancelled"
                ) from None
            if exc.code == types.CONNECTION_CLOSED:
                raise ToolCallError(await self._lost_during_call(tool, transport)) from None
            if exc.code == TOO_LARGE_CODE:
                raise ToolCallError(
                    self.redact(f"{self.name}.{tool}: {exc.error.message}")
                ) from None
            raise ToolCallError(
                self.redact(f"{self.name}.{tool} was refused by the server: {exc.error.message}")
            ) from None
        except _LOST as exc:
            self._mark_lost(f"the connection broke during a call ({_describe(exc)})")
            raise ToolCallError(await self._lost_during_call(tool, transport)) from None
        except RuntimeError as exc:  # the SDK's checks of a result (e.g. its output schema)
            raise ToolCallError(self.redact(f"{self.name}.{tool}: {exc}")) from None
        finally:
            self.in_flight -= 1
            self.last_used = time.time()

    async def _lost_during_call(self, tool: str, transport: StdioTransport | None) -> str:
        if transport is not None:  # let the process's exit be seen, for its code
            await transport.wait_exit(1.0)
            if transport.oversized:
                return self.redact(
                    f"{self.name}.{tool}: the server's answer was {transport.oversized[-1]:,} "
                    f"bytes, over the limit of {self.max_message_bytes:,}; the connection was "
                    "reset and the server is started again on the next call"
                )
            code = transport.returncode
            ended = f"exited (exit code {code})" if code is not None else "closed its output"
            return (
                f"MCP server {self.name!r} {ended} during the call to {tool}; it is started "
                "again on the next call"
            )
        self._mark_lost("the connection was lost during a call")
        return (
            f"the connection to MCP server {self.name!r} was lost during the call to {tool}; it "
            "is opened again on the next call"
        )

    def _mark_lost(self, reason: str) -> None:
        self._lost_reason = reason
        if self._wake is not None:
            self._wake.set()
        self.state = "failed"
        self.last_error = self.redact(reason)

    def _probe_soon(self, client: Client) -> None:
        if self._probing:
            return
        self._probing = True
        asyncio.get_running_loop().create_task(self._probe(client))

    async def _probe(self, client: Client) -> None:
        """After a timed-out call: a server that cannot answer tools/list is restarted."""
        try:
            with anyio.fail_after(_PROBE_TIMEOUT_S):
                await client.list_tools()
        except (TimeoutError, MCPError, *_LOST) as exc:
            if self._client is client:
                logger.warning(
                    "MCP server %s did not answer after a call timed out (%s): restarting it",
                    self.name,
                    _describe(exc),
                )
                self._mark_lost(
                    "it stopped answering (a call timed out, then tools/list did too); "
                    "restarted on the next call"
                )
        finally:
            self._probing = False

    # -- stopping ------------------------------------------------------------------------------
    def idle_since(self) -> float | None:
        """Since when a ready server has had nothing to do (its last call's end, or its start);
        None while it is busy or not running."""
        if self.state != "ready" or self.in_flight:
            return None
        return max(self.last_used or 0.0, self._ready_at)

    async def stop(self, reason: str = "stopped") -> None:
        """End the session (and the process); the next call starts it again."""
        keeper = self._keeper
        if keeper is None or keeper.done():
            if self.state in {"ready", "starting"}:
                self.state = "stopped"
            return
        _fail(self._ready, ServerUnavailableError(self._unavailable(reason)))
        if self.state == "starting":
            keeper.cancel()
        if self._wake is not None:
            self._wake.set()
        _done, pending = await asyncio.wait([keeper], timeout=_STOP_TIMEOUT_S)
        if pending:
            keeper.cancel()
            await asyncio.wait([keeper])
        self.state = "stopped"
        logger.info("MCP server %s stopped (%s)", self.name, reason)
