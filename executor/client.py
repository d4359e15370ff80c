"""DockerExecutionClient: the async API the agent and the UI use.

The docker SDK is synchronous. Every call into it leaves the event loop here, at one boundary
(`_offload`), onto a pool sized for `max_concurrency`, so many sessions run at once without
serialising on asyncio's small default pool. A cancelled call sets a flag that the running
command sees within a fraction of a second; the command and its children are then killed.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import functools
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import docker
from settings import ExecutorSettings

from . import _hardening, tools_index
from .audit import AuditLog
from .errors import ExecutorError, FileTooLargeError, InvalidArgumentError
from .keys import split_key
from .limits import UserLimits
from .manager import SandboxManager
from .sandbox import ExecutionResult, Sandbox
from .tools_index import ToolFunction

T = TypeVar("T")

_MAX_COMMAND_BYTES = 100_000  # one argv element must stay under 128 KiB
_MAX_LIST_ENTRIES = 5000


@dataclass(frozen=True)
class OutputChunk:
    """A piece of a running command's output (decoded; invalid UTF-8 becomes U+FFFD)."""

    stream: str  # "stdout" or "stderr"
    text: str


@dataclass(frozen=True)
class FileInfo:
    """One entry of a directory listing in the sandbox."""

    path: str
    name: str
    size: int
    modified: float  # seconds since the epoch
    is_dir: bool
    is_symlink: bool = False


class DockerExecutionClient:
    """Runs commands and moves files in one hardened container per user_id (a chat session).

    Args:
        image_name: The sandbox image (built by `make image`).
        tools_path: Host folder mounted read-only at /tools (default: the project's `tools/`).
        skills_path: Host folder mounted read-only at /skills (default: the project's `skills/`).
        docker_client: A docker SDK client to use instead of one made from the environment.
        **settings: Any field of `settings.ExecutorSettings`, e.g. `memory_limit_bytes=...`.
    """

    def __init__(
        self,
        image_name: str = "mcp-code-executor:latest",
        tools_path: str | Path | None = None,
        skills_path: str | Path | None = None,
        *,
        docker_client: docker.DockerClient | None = None,
        **settings: Any,
    ) -> None:
        known = {f.name for f in dataclasses.fields(ExecutorSettings)}
        unknown = set(settings) - known
        if unknown:
            raise TypeError(f"unknown executor settings {sorted(unknown)}; known: {sorted(known)}")
        paths = {f.name for f in dataclasses.fields(ExecutorSettings) if f.type in (Path, "Path")}
        settings = {
            k: Path(v) if k in paths and isinstance(v, str) else v for k, v in settings.items()
        }
        spec = dataclasses.replace(ExecutorSettings(), image_name=image_name, **settings)
        if tools_path is not None:
            spec = dataclasses.replace(spec, tools_path=Path(tools_path))
        if skills_path is not None:
            spec = dataclasses.replace(spec, skills_path=Path(skills_path))
        _hardening.check_limits(spec)
        self.settings = spec

        def make_client() -> docker.DockerClient:
            if docker_client is not None:
                return docker_client
            return docker.DockerClient.from_env(max_pool_size=spec.max_concurrency, timeout=120)

        self._manager = SandboxManager(
            make_client, spec, tools_path=spec.tools_path, skills_path=spec.skills_path
        )
        self._pool = ThreadPoolExecutor(
            max_workers=spec.max_concurrency, thread_name_prefix="docker-exec"
        )
        self._audit = AuditLog(
            spec.audit_log, max_bytes=spec.audit_max_bytes, backups=spec.audit_backups
        )
        self._limits = UserLimits(
            per_minute=spec.max_executions_per_minute,
            concurrent=spec.max_concurrent_executions,
            live_sessions=spec.max_live_sessions,
        )

    @property
    def audit(self) -> AuditLog:
        """The audit log, shared with other writers (e.g. logins) so one handler rotates it."""
        return self._audit

    @classmethod
    def from_settings(cls, spec: ExecutorSettings, **overrides: Any) -> DockerExecutionClient:
        values = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
        values.update(overrides)
        return cls(
            values.pop("image_name"),
            values.pop("tools_path"),
            values.pop("skills_path"),
            **values,
        )

    # -- the one async boundary ----------------------------------------------------------

    async def _offload(
        self,
        fn: Callable[..., T],
        *args: Any,
        cancel: threading.Event | None = None,
        **kwargs: Any,
    ) -> T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if cancel is not None:
                cancel.set()  # the thread kills the command and returns shortly
            raise

    async def _audited(
        self,
        key: str,
        operation: str,
        target: str,
        call: Awaitable[T],
        *,
        bytes_in: int = 0,
        exit_code: Callable[[T], int] | None = None,
        bytes_out: Callable[[T], int] | None = None,
    ) -> T:
        """Await `call`, appending what it did (or how it failed) to the audit log."""
        started = time.monotonic()
        try:
            result = await call
        except (ExecutorError, asyncio.CancelledError) as exc:
            error = "cancelled" if isinstance(exc, asyncio.CancelledError) else str(exc)
            self._audit.record(
                key,
                operation,
                target,
                duration_s=time.monotonic() - started,
                bytes_in=bytes_in,
                error=f"{type(exc).__name__}: {error}",
            )
            raise
        self._audit.record(
            key,
            operation,
            target,
            duration_s=time.monotonic() - started,
            bytes_in=bytes_in,
            exit_code=exit_code(result) if exit_code else None,
            bytes_out=bytes_out(result) if bytes_out else 0,
        )
        return result

    def _sandbox(self, key: str) -> Sandbox:
        """The key's Sandbox, refusing a new live session beyond the user's limit."""
        sandbox = self._manager.get(key)  # no container yet: that waits for the first use
        if self._limits.live_sessions and not sandbox.is_live():
            owner, _ = split_key(key)
            live = self._manager.live_keys(owner)
            self._limits.check_session(owner, key, live, self.settings.idle_timeout_s)
        return sandbox

    def _in_sandbox(self, key: str, method: str, *args: Any) -> Any:
        """Call a Sandbox method (in a worker thread: it blocks on Docker)."""
        return getattr(self._sandbox(key), method)(*args)

    @staticmethod
    async def _result_of(stream: AsyncIterator[OutputChunk | ExecutionResult]) -> ExecutionResult:
        result = None
        async for item in stream:
            if isinstance(item, ExecutionResult):
                result = item
        assert result is not None
        return result

    # -- commands ------------------------------------------------------------------------

    def _check_timeout(self, timeout: float) -> float:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise InvalidArgumentError(f"timeout must be a number of seconds, not {timeout!r}")
        if not math.isfinite(timeout) or timeout <= 0:
            raise InvalidArgumentError(f"timeout must be more than 0 seconds, not {timeout!r}")
        if timeout > self.settings.max_timeout_s:
            raise InvalidArgumentError(
                f"timeout {timeout:g} s is over the limit of {self.settings.max_timeout_s:g} s"
            )
        return float(timeout)

    @staticmethod
    def _check_command(command: str) -> None:
        if not isinstance(command, str):
            raise InvalidArgumentError("command must be a string")
        if "\0" in command:
            raise InvalidArgumentError("command contains a NUL byte")
        if len(command.encode("utf-8", "surrogateescape")) > _MAX_COMMAND_BYTES:
            raise InvalidArgumentError(
                f"command is longer than {_MAX_COMMAND_BYTES:,} bytes; write it to a file with "
                "write_file and run the file instead"
            )

    async def run(self, user_id: str, command: str, timeout: float = 30) -> ExecutionResult:
        """Run a bash command; the full result (exit code, output, timed_out, duration)."""
        return await self._result_of(self.stream_bash(user_id, command, timeout))

    async def stream_bash(
        self, user_id: str, command: str, timeout: float = 30
    ) -> AsyncIterator[OutputChunk | ExecutionResult]:
        """Like `run`, but yields the output as it comes (OutputChunk), then the result.

        Stopping the iteration early (or cancelling the task) kills the command.
        """
        timeout = self._check_timeout(timeout)
        self._check_command(command)
        async for item in self._streamed(user_id, "execute", command, "run_bash", timeout):
            yield item

    async def run_python(self, user_id: str, code: str, timeout: float = 30) -> ExecutionResult:
        """Run Python in the session's persistent interpreter: variables, imports and
        definitions stay for the next call; the value of a final expression is printed.
        A timeout, crash or kill restarts the interpreter, and the result says state was lost."""
        return await self._result_of(self.stream_python(user_id, code, timeout))

    async def stream_python(
        self, user_id: str, code: str, timeout: float = 30
    ) -> AsyncIterator[OutputChunk | ExecutionResult]:
        """`run_python`, yielding output as it comes, then the result."""
        timeout = self._check_timeout(timeout)
        self._check_command(code)
        async for item in self._streamed(user_id, "python", code, "run_python", timeout):
            yield item

    async def reset_python(self, user_id: str) -> bool:
        """Forget the session's Python variables; True if an interpreter had state."""
        return await self._offload(self._in_sandbox, user_id, "reset_python")

    async def _streamed(
        self,
        key: str,
        operation: str,
        target: str,
        method: str,
        timeout: float,
    ) -> AsyncIterator[OutputChunk | ExecutionResult]:
        """Run Sandbox.`method`(target, ...) in a worker thread, under the user's limits and the
        audit log; yield its output chunks as they come, then its result."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        decoders = {
            s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")
        }
        cancel = threading.Event()

        def on_chunk(stream: str, data: bytes) -> None:  # in the worker thread
            loop.call_soon_threadsafe(chunks.put_nowait, (stream, data))

        owner, _ = split_key(key)
        with self._limits.execution(owner):
            work = asyncio.ensure_future(
                self._audited(
                    key,
                    operation,
                    target,
                    self._offload(
                        self._in_sandbox,
                        key,
                        method,
                        target,
                        timeout,
                        cancel,
                        on_chunk,
                        cancel=cancel,
                    ),
                    bytes_in=len(target.encode("utf-8", "replace")),
                    exit_code=lambda r: r.exit_code,
                    bytes_out=lambda r: len(r.stdout) + len(r.stderr),
                )
            )
            try:
                while True:
                    getter = asyncio.ensure_future(chunks.get())
                    done, _ = await asyncio.wait(
                        {getter, work}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if getter not in done:
                        getter.cancel()
                        break
                    stream, data = getter.result()
                    text = decoders[stream].decode(data)
                    if text:
                        yield OutputChunk(stream, text)
                while not chunks.empty():
                    stream, data = chunks.get_nowait()
                    if text := decoders[stream].decode(data):
                        yield OutputChunk(stream, text)
                yield await work
            finally:
                if not work.done():
                    cancel.set()  # the consumer went away: kill the command
                    with contextlib.suppress(asyncio.CancelledError, ExecutorError):
                        await asyncio.shield(work)

    async def execute_bash(
        self, user_id: str, command: str, timeout: float = 30
    ) -> tuple[int, str, str]:
        """Run a bash command in /workspace as the sandbox user: `(exit_code, stdout, stderr)`.

        On timeout the command and every process it started are killed and the exit code is
        124. Processes a command leaves running in the background are killed when it returns.
        """
        return (await self.run(user_id, command, timeout)).as_tuple()

    # -- files ---------------------------------------------------------------------------

    def _file_op(
        self,
        user_id: str,
        op: str,
        args: dict[str, Any],
        stdin: bytes | None = None,
        stdout_limit: int = 1 << 20,
    ) -> tuple[bytes, dict[str, Any]]:
        sandbox = self._sandbox(user_id)
        timeout = 60 + (len(stdin or b"") + stdout_limit) / (20 << 20)
        return sandbox.file_op(op, args, stdin=stdin, stdout_limit=stdout_limit, timeout_s=timeout)

    @staticmethod
    def _check_path(path: str) -> str:
        if not isinstance(path, str) or not path or "\0" in path:
            raise InvalidArgumentError(
                f"invalid path {path!r}: a non-empty string without NUL bytes"
            )
        return path

    async def read_file(
        self,
        user_id: str,
        file_path: str,
        offset: int = 0,
        line_count: int | None = None,
    ) -> str:
        """Lines `offset` .. `offset + line_count` of a text file (0-based; all when None).

        Reads /workspace, /tools or /skills. At most `read_file_limit_bytes` are returned; when
        more remain, a last line says so and which offset continues.
        """
        self._check_path(file_path)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidArgumentError(f"offset must be a whole number >= 0, not {offset!r}")
        if line_count is not None and (
            isinstance(line_count, bool) or not isinstance(line_count, int) or line_count < 1
        ):
            raise InvalidArgumentError(
                f"line_count must be a whole number >= 1, not {line_count!r}"
            )
        limit = self.settings.read_file_limit_bytes
        data, meta = await self._offload(
            self._file_op,
            user_id,
            "read",
            {
                "path": file_path,
                "offset": offset,
                "line_count": line_count,
                "limit": limit,
            },
            stdout_limit=limit,
        )
        text = data.decode("utf-8", "replace")
        if meta.get("truncated"):
            text += (
                f"\n[... read_file stopped at {limit:,} bytes; continue with "
                f"offset={meta.get('next_offset')} or use line_count ...]"
            )
        return text

    async def write_file(self, user_id: str, file_path: str, content: str | bytes) -> None:
        """Write `content` (text as UTF-8, or bytes) to a file under /workspace, byte-exact."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        if not isinstance(data, bytes | bytearray):
            raise InvalidArgumentError("content must be str or bytes")
        await self.upload_file(user_id, file_path, bytes(data))

    async def upload_file(self, user_id: str, path: str, data: bytes) -> None:
        """Store `data` at `path` under /workspace (parents created, owned by the sandbox user)."""
        self._check_path(path)
        if len(data) > self.settings.max_file_bytes:
            raise FileTooLargeError(
                f"{path} is {len(data):,} bytes, over the per-file limit of "
                f"{self.settings.max_file_bytes:,} bytes"
            )
        args = {"path": path, "size": len(data), "quota": self.settings.workspace_quota_bytes}
        await self._audited(
            user_id,
            "upload",
            path,
            self._offload(self._file_op, user_id, "write", args, stdin=data, stdout_limit=4096),
            bytes_in=len(data),
        )

    async def download_file(self, user_id: str, path: str) -> bytes:
        """The bytes of a file under /workspace (up to the per-file limit)."""
        self._check_path(path)
        limit = self.settings.max_file_bytes
        data, _ = await self._audited(
            user_id,
            "download",
            path,
            self._offload(
                self._file_op,
                user_id,
                "download",
                {"path": path, "limit": limit},
                stdout_limit=limit,
            ),
            bytes_out=lambda r: len(r[0]),
        )
        return data

    async def list_files(
        self, user_id: str, path: str = "/workspace", *, recursive: bool = False
    ) -> list[FileInfo]:
        """Entries of a directory in /workspace, /tools or /skills (sorted; dirs included)."""
        self._check_path(path)
        data, _ = await self._offload(
            self._file_op,
            user_id,
            "list",
            {"path": path, "recursive": recursive, "max_entries": _MAX_LIST_ENTRIES},
            stdout_limit=16 << 20,
        )
        return [FileInfo(**entry) for entry in json.loads(data or b"[]")]

    async def download_workspace_zip(self, user_id: str) -> bytes:
        """All of /workspace as a zip archive (regular files; symlinks skipped)."""
        limit = self.settings.workspace_quota_bytes
        data, _ = await self._audited(
            user_id,
            "download",
            "/workspace (zip)",
            self._offload(
                self._file_op, user_id, "zip", {"limit": limit}, stdout_limit=limit + (64 << 20)
            ),
            bytes_out=lambda r: len(r[0]),
        )
        return data

    async def workspace_usage(self, user_id: str) -> int:
        """Bytes used in the session's /workspace."""
        _, meta = await self._offload(self._file_op, user_id, "usage", {}, stdout_limit=1024)
        return int(meta.get("used", 0))

    # -- tools (parsed on the host, never imported) ---------------------------------------

    async def read_docstring(self, module_path: str, function_name: str) -> str:
        """The docstring of a function in /tools, e.g. `("tools.example", "greet")`."""
        return await self._offload(
            tools_index.read_docstring,
            self.settings.tools_path,
            module_path,
            function_name,
        )

    async def list_tools(self) -> list[ToolFunction]:
        """Every public function in /tools with its signature and docstring summary."""
        return await self._offload(tools_index.list_tools, self.settings.tools_path)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Docker, check the image and adopt leftovers now instead of on first use."""
        await self._offload(self._manager.start)

    async def stop(self, user_id: str) -> None:
        """Async form of stop_container (files kept; the next call starts it again)."""
        await self._offload(self._manager.stop, user_id)

    def stop_container(self, user_id: str) -> None:
        """Stop the user's container; its next call starts it again (files kept)."""
        self._manager.stop(user_id)

    def cleanup_container(self, user_id: str, *, remove_volume: bool = False) -> None:
        """Remove the user's container (and its workspace volume when asked)."""
        self._manager.remove(user_id, volume=remove_volume)

    def cleanup_all(self, *, remove_volumes: bool = False) -> None:
        """Remove every container this app created (and the workspace volumes when asked)."""
        self._manager.remove_all(volumes=remove_volumes)

    def reap_idle(self) -> list[str]:
        """Stop containers idle longer than `idle_timeout_s` now (the reaper does it regularly)."""
        return self._manager.reap_idle()

    async def aclose(self, *, remove_containers: bool = True) -> None:
        """Shut down: remove this app's containers (volumes stay) and stop the worker threads."""
        if remove_containers and self._manager._started:
            await self._offload(self._manager.remove_all)
        await self._offload(self._manager.close)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._audit.close()
