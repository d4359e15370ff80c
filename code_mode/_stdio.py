"""The stdio transport to one MCP server process, with the limits a shared host process needs.

The SDK's `stdio_client` keeps a whole line in memory however long it grows and sends the
server's stderr to ours. This one (same spawn, same environment rule, same shutdown order:
close stdin, wait, SIGTERM the process group, SIGKILL) adds:

- a cap on one message: a longer line is read through and dropped without being kept; the
  request it answered fails with an error giving its size and the limit (the id is read from the
  line's first or last bytes, where JSON-RPC writers put it; without an id the connection is
  ended, which fails what was pending);
- stderr into a bounded tail (and the log at DEBUG), redacted, never into results;
- progress and log notifications dropped as they arrive (nothing here shows them), so a server
  that floods them costs a parse per line and no memory;
- `exited`: set when the server's stdout ends (it died or closed it), so the hub notices a crash
  between calls too.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16
_EDGE = 256  # bytes kept of an oversized line's start and end, to find its id
_HEAD_ID = re.compile(
    rb'^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(-?\d+|"[^"\\]{0,200}")'
)
_TAIL_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"[^"\\]{0,200}")\s*\}\s*$')
_DROPPED = {"notifications/message", "notifications/progress"}
TOO_LARGE_CODE = -32099  # JSON-RPC server-error range; our own code for "message too large"
_TERM_WAIT_S = 2.0
_KILL_WAIT_S = 2.0


@dataclass(frozen=True)
class StdioParams:
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None


class StdioTransport:
    """One server process; `async with transport as (read, write)` as the SDK's transports."""

    def __init__(
        self,
        params: StdioParams,
        *,
        max_message_bytes: int,
        stderr_lines: int = 40,
        label: str = "",
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.params = params
        self.max_message_bytes = max_message_bytes
        self.label = label or params.command
        self.redact = redact
        self.process: anyio.abc.Process | None = None
        self.exited = anyio.Event()
        self.dropped_notifications = 0
        self.oversized: list[int] = []  # sizes of dropped messages
        self._stderr: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self._cm: Any = None

    # -- what the hub reads -------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process else None

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the process ended (None if it still runs after `timeout`)."""
        if self.process is not None:
            await _exited(self.process, timeout)
        return self.returncode

    def stderr_tail(self, lines: int = 5) -> str:
        return "\n".join(list(self._stderr)[-lines:])

    # -- Transport protocol ------------------------------------------------------------------
    async def __aenter__(self) -> Any:
        self._cm = self._run()
        return await self._cm.__aenter__()

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._cm.__aexit__(*exc)

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[Any]:
        env = get_default_environment() | dict(self.params.env or {})
        self.process = process = await anyio.open_process(
            [self.params.command, *self.params.args],
            env=env,
            cwd=self.params.cwd,
            start_new_session=True,
        )
        read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

        async def stdout_reader() -> None:
            try:
                async with read_writer:
                    await self._read_stdout(process, read_writer)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass
            finally:
                self.exited.set()

        async def stdin_writer() -> None:
            assert process.stdin is not None
            try:
                async with write_reader:
                    async for message in write_reader:
                        data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                        await process.stdin.send((data + "\n").encode())
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                await read_writer.aclose()

        async with anyio.create_task_group() as tg:
            tg.start_soon(stdout_reader)
            tg.start_soon(stdin_writer)
            tg.start_soon(self._read_stderr, process)
            try:
                yield read_stream, write_stream
            finally:
                with anyio.CancelScope(shield=True):
                    await write_stream.aclose()
                    await self._stop(process)
                    await read_stream.aclose()
                tg.cancel_scope.cancel()

    # -- reading -----------------------------------------------------------------------------
    async def _deliver(self, line: bytes, writer: Any) -> None:
        if not line.strip():
            return
        if b'"notifications/' in line[:512] and _droppable(line):
            self.dropped_notifications += 1
            return
        try:
            message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except ValueError as exc:
            logger.debug("MCP server %s wrote a line that is not JSON-RPC: %s", self.label, exc)
            await writer.send(exc)
            return
        if isinstance(message, types.JSONRPCNotification) and message.method in _DROPPED:
            self.dropped_notifications += 1
            return
        await writer.send(SessionMessage(message))

    async def _too_large(self, head: bytes, tail: bytes, size: int, writer: Any) -> None:
        self.oversized.append(size)
        found = _HEAD_ID.search(head) or _TAIL_ID.search(tail)
        limit = self.max_message_bytes
        text = (
            f"the server's answer is {size:,} bytes, over the limit of {limit:,} bytes "
            f"({limit / (1 << 20):g} MiB) for one message; it was dropped"
        )
        logger.warning("MCP server %s: dropped a message of %d bytes", self.label, size)
        if found is None:  # no id to answer: end the connection, failing what was pending
            raise anyio.BrokenResourceError(text)
        raw_id = found.group(1)
        request_id: int | str = int(raw_id) if raw_id[:1] != b'"' else raw_id[1:-1].decode()
        error = types.JSONRPCError(
            jsonrpc="2.0",
            id=request_id,
            error=types.ErrorData(code=TOO_LARGE_CODE, message=text, data={"size": size}),
        )
        await writer.send(SessionMessage(error))

    async def _read_stdout(self, process: anyio.abc.Process, writer: Any) -> None:
        assert process.stdout is not None
        limit = self.max_message_bytes
        buffer = bytearray()
        skipping = False
        head = tail = b""
        skipped = 0
        while True:
            try:
                chunk = await process.stdout.receive(_CHUNK)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            if skipping:
                end = chunk.find(b"\n")
                part = chunk if end < 0 else chunk[:end]
                skipped += len(part)
                tail = (tail + part)[-_EDGE:]
                if end < 0:
                    continue
                skipping = False
                await self._too_large(head, tail, skipped, writer)
                chunk = chunk[end + 1 :]
            buffer += chunk
            while True:
                end = buffer.find(b"\n")
                if end < 0:
                    break
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                if len(line) > limit:
                    await self._too_large(line[:_EDGE], line[-_EDGE:], len(line), writer)
                else:
                    await self._deliver(line, writer)
            if len(buffer) > limit:
                skipping, skipped = True, len(buffer)
                head, tail = bytes(buffer[:_EDGE]), bytes(buffer[-_EDGE:])
                buffer.clear()

    async def _read_stderr(self, process: anyio.abc.Process) -> None:
        if process.stderr is None:
            return
        pending = b""
        with suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            while True:
                pending += await process.stderr.receive(_CHUNK)
                *lines, pending = pending.split(b"\n")
                if len(pending) > 4096:  # one endless line: keep its start
                    lines.append(pending[:4096])
                    pending = b""
                for raw in lines:
                    line = self.redact(raw.decode("utf-8", "replace").rstrip())[:500]
                    if line:
                        self._stderr.append(line)
                        logger.debug("MCP server %s stderr: %s", self.label, line)

    # -- stopping ----------------------------------------------------------------------------
    async def _stop(self, process: anyio.abc.Process) -> None:
        """Close stdin, give the server a moment, then end its whole process group."""
        if process.stdin is not None:
            with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await process.stdin.aclose()
        if not await _exited(process, _TERM_WAIT_S):
            _signal_group(process.pid, signal.SIGTERM)
            if not await _exited(process, _KILL_WAIT_S):
                _signal_group(process.pid, signal.SIGKILL)
                await _exited(process, _KILL_WAIT_S)
        # children the server left behind in its group
        _signal_group(process.pid, signal.SIGKILL)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await stream.aclose()
        with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.aclose()


def _droppable(line: bytes) -> bool:
    """A progress or log notification (checked with the plain JSON parser: cheaper than the
    SDK's validation, which a flood would otherwise pay per line)."""
    try:
        message = json.loads(line)
    except ValueError:
        return False
    return isinstance(message, dict) and "id" not in message and message.get("method") in _DROPPED


async def _exited(process: anyio.abc.Process, timeout: float) -> bool:
    """Polls the exit code: `process.wait()` also waits for the pipes to close, which a child
    the server left behind can hold open (the SDK polls for the same reason)."""
    with anyio.move_on_after(timeout):
        while process.returncode is None:  # noqa: ASYNC110
            await anyio.sleep(0.01)
    return process.returncode is not None


def _signal_group(pid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
