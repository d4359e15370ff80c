"""A running command's output as MCP progress notifications, and stopping it when the client
goes: cancelling the request, a client timeout or a dropped connection kills the command.

(The chat's live output is another thing: `agent.live.LiveOutputHub` routes it to the UI.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

from fastmcp import Context
from fastmcp.exceptions import ToolError
from fastmcp.server.dependencies import get_http_request

logger = logging.getLogger(__name__)

HEARTBEAT_S = 2.0  # longest silence between progress notifications while a command runs
FLUSH_S = 0.25  # new output is sent at most this often
LIVE_CHARS = 8192  # most characters of new output in one progress notification
DISCONNECT_KEY = "mcp_code_executor.disconnected"  # scope key of http.DisconnectWatch's event

T = TypeVar("T")


class ProgressNotifier:
    """Sends a running command's new output as progress notifications.

    `progress` is the seconds elapsed and `total` the timeout, so a client's progress bar shows
    how long the command may still run; `message` is the new output (None for a heartbeat)."""

    def __init__(self, ctx: Context, timeout: float) -> None:
        self._ctx = ctx
        self._timeout = timeout
        self._started = time.monotonic()
        self._last_sent = self._started
        self._last_progress = 0.0
        self._parts: list[str] = []
        self._size = 0
        self._skipped = 0
        self.sent = 0

    def add(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if self._size > 4 * LIVE_CHARS:  # keep the newest output only, counting what is skipped
            joined = "".join(self._parts)
            self._skipped += len(joined) - LIVE_CHARS
            self._parts, self._size = [joined[-LIVE_CHARS:]], LIVE_CHARS

    async def tick(self) -> None:
        """Send the new output, or a heartbeat when nothing was sent for HEARTBEAT_S."""
        now = time.monotonic()
        if self._parts or now - self._last_sent >= HEARTBEAT_S:
            await self._send(now)

    async def _send(self, now: float) -> None:
        message = None
        if self._parts:
            text = "".join(self._parts)
            if len(text) > LIVE_CHARS:
                self._skipped += len(text) - LIVE_CHARS
                text = text[-LIVE_CHARS:]
            if self._skipped:
                text = f"[... {self._skipped:,} characters not shown live ...]\n{text}"
                self._skipped = 0
            message = text
            self._parts, self._size = [], 0
        progress = max(round(now - self._started, 3), self._last_progress + 0.001)
        self._last_progress = progress
        self._last_sent = now
        await self._ctx.report_progress(progress, self._timeout, message)
        self.sent += 1


class ClientGone(ToolError):
    """The HTTP client disconnected while its command ran; the command was killed."""


def client_gone() -> asyncio.Event | None:
    """Set when the client of the current HTTP request disconnects (None over stdio)."""
    try:
        return get_http_request().scope.get(DISCONNECT_KEY)
    except RuntimeError:
        return None


async def with_progress(
    work: Awaitable[T], live: ProgressNotifier, gone: asyncio.Event | None = None
) -> T:
    """Await `work` (a tool call whose output feeds `live`) while sending progress. If this is
    cancelled or `gone` is set first, `work` is cancelled, which closes the executor's stream
    and so kills the command (ClientGone for `gone`)."""
    # One task makes the call; this one sends progress every FLUSH_S meanwhile. A command that
    # ends sooner (most do) costs one task and no notification.
    task = asyncio.ensure_future(work)
    try:
        while True:
            await asyncio.wait({task}, timeout=FLUSH_S)
            if task.done():
                return task.result()
            if gone is not None and gone.is_set():
                raise ClientGone("the client disconnected; the command was killed")
            try:
                await live.tick()
            except Exception as exc:
                logger.info("progress notification failed, stopping the command: %r", exc)
                raise ClientGone("progress could not be sent; the command was killed") from exc
    finally:
        if not task.done():
            task.cancel()  # closes the executor stream: the command is killed
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(task, return_exceptions=True)
