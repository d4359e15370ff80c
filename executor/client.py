"""DockerExecutionClient: the async API the agent, the UI and the MCP server use.

Engines are synchronous (the docker SDK is). Every call into one leaves the event loop here, at
one boundary (`_offload`), onto a thread pool sized for `max_concurrency`, so many sessions run
at once without serialising on asyncio's small default pool. The only exceptions are the two
blocking verbs at the end of the class (`stop_all`, `cleanup_all`), for exit hooks, command lines
and synchronous teardown, where no event loop runs. A cancelled call sets a flag that the running
command sees within a fraction of a second; the command and its children are then killed.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import functools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from settings import ConfigError, ExecutorSettings, Problem

from . import _validate, tools_index
from ._client_files import WorkspaceFiles
from .audit import AuditLog, current_tags
from .bridge.contracts import ToolBridge
from .bridge.services import bridge_services
from .engines import Engine, make_engine
from .errors import ExecutorError
from .keys import split_key
from .limits import UserLimits
from .manager import SandboxManager
from .results import (
    ExecutionResult,
    Inventory,
    OutputChunk,
    PoolStatus,
    SandboxInfo,
)
from .sandbox import Sandbox
from .tools_index import ToolFunction

T = TypeVar("T")


class DockerExecutionClient(WorkspaceFiles):
    """Runs commands and moves files in one hardened container per user_id (a chat session).

    Args:
        image_name: The sandbox image (built by `make image`).
        tools_path: Host folder mounted read-only at /tools (default: the project's `tools/`).
        skills_path: Host folder mounted read-only at /skills (default: the project's `skills/`).
        docker_client: A docker SDK client to use instead of one made from the environment.
        sandbox_engine: An engine object to use (see `executor.engines`) instead of the one the
            `engine` setting names; overrides `docker_client`.
        **settings: Any field of `settings.ExecutorSettings`, e.g. `memory_limit_bytes=...`.

    Raises:
        ConfigError: a setting is unknown or cannot be used; the message names every one.
    """

    def __init__(
        self,
        image_name: str = "mcp-code-executor:latest",
        tools_path: str | Path | None = None,
        skills_path: str | Path | None = None,
        *,
        docker_client: Any = None,
        sandbox_engine: Engine | None = None,
        tool_bridge: ToolBridge | None = None,
        tool_call_timeout_s: float = 120.0,
        **settings: Any,
    ) -> None:
        known = {f.name for f in dataclasses.fields(ExecutorSettings)}
        unknown = [
            Problem(name, repr(value), "a field of settings.ExecutorSettings")
            for name, value in sorted(settings.items())
            if name not in known
        ]
        given = {name: value for name, value in settings.items() if name in known}
        for name, value in (("tools_path", tools_path), ("skills_path", skills_path)):
            if value is not None:
                given[name] = value
        try:  # every value is checked here, as when loaded (one ConfigError naming each)
            spec = dataclasses.replace(ExecutorSettings(), image_name=image_name, **given)
        except ConfigError as exc:
            raise ConfigError.of([*unknown, *exc.problems]) from None
        if unknown:
            raise ConfigError.of(unknown)
        self.settings = spec
        engine = sandbox_engine
        if engine is None:
            options: dict[str, Any] = {
                "max_connections": spec.max_concurrency,
                "quota_dir": spec.state_dir / f"{spec.app_label}-workspaces",
                "quota_mode": spec.workspace_quota_mode,
                # Blank quota images kept formatted (~1 MB of disk each, nothing else): as many
                # as a crowd the pool expects, so new workspaces skip mkfs when it matters.
                "quota_spares": max(4, min(spec.pool_max_size, 32)) if spec.pool_size else 4,
            }
            if docker_client is not None:
                options["client"] = docker_client
            engine = make_engine(spec.engine, spec=spec, **options)
        self.engine = engine
        self._owns_engine = sandbox_engine is None and docker_client is None
        self._audit = AuditLog(
            spec.audit_log, max_bytes=spec.audit_max_bytes, backups=spec.audit_backups
        )
        # Code mode's calls and egress: what sandbox code reaches through its runner.
        self.services = bridge_services(spec, self._audit, tool_bridge, tool_call_timeout_s)
        self.egress = self.services.allowlist
        self._manager = SandboxManager(
            engine,
            spec,
            tools_path=spec.tools_path,
            skills_path=spec.skills_path,
            exec_word=f"{engine.name} exec",
            services=self.services,
        )
        self._manager.on_retention = self._retained
        self._pool = ThreadPoolExecutor(
            max_workers=spec.max_concurrency, thread_name_prefix="sandbox-exec"
        )
        self._limits = UserLimits(
            per_minute=spec.max_executions_per_minute,
            burst=spec.max_executions_burst,
            concurrent=spec.max_concurrent_executions,
            live_sessions=spec.max_live_sessions,
            queue_timeout_s=spec.limit_wait_s,
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
        if self._limits.live_sessions and not sandbox.container.is_live():
            owner, _ = split_key(key)
            live = self._manager.live_keys(owner)
            self._limits.check_session(owner, key, live, self.settings.idle_timeout_s)
        return sandbox

    def _in_sandbox(self, key: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a Sandbox method (in a worker thread: it blocks on the engine)."""
        return getattr(self._sandbox(key), method)(*args, **kwargs)

    # -- commands ------------------------------------------------------------------------

    async def run(self, user_id: str, command: str, timeout: float = 30) -> ExecutionResult:
        """Run a bash command; the full result (exit code, output, timed_out, duration)."""
        return await _result_of(self.stream_bash(user_id, command, timeout))

    async def stream_bash(
        self, user_id: str, command: str, timeout: float = 30
    ) -> AsyncIterator[OutputChunk | ExecutionResult]:
        """Like `run`, but yields the output as it comes (OutputChunk), then the result.

        Stopping the iteration early (or cancelling the task) kills the command.
        """
        timeout = _validate.timeout_s(timeout, self.settings.max_timeout_s)
        _validate.command(command)
        async for item in self._streamed(user_id, "execute", command, "run_bash", timeout):
            yield item

    async def run_python(self, user_id: str, code: str, timeout: float = 30) -> ExecutionResult:
        """Run Python in the session's persistent interpreter: variables, imports and
        definitions stay for the next call; the value of a final expression is printed.
        A timeout, crash or kill restarts the interpreter, and the result says state was lost."""
        return await _result_of(self.stream_python(user_id, code, timeout))

    async def stream_python(
        self, user_id: str, code: str, timeout: float = 30
    ) -> AsyncIterator[OutputChunk | ExecutionResult]:
        """`run_python`, yielding output as it comes, then the result."""
        timeout = _validate.timeout_s(timeout, self.settings.max_timeout_s)
        _validate.command(code)
        async for item in self._streamed(user_id, "python", code, "run_python", timeout):
            yield item

    async def reset_python(self, user_id: str) -> bool:
        """Forget the session's Python variables; True if an interpreter had state."""
        return await self._offload(self._in_sandbox, user_id, "reset_python")

    async def _streamed(
        self, key: str, operation: str, target: str, method: str, timeout: float
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
        async with self._limits.execution(owner):
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
                        current_tags(),
                        cancel=cancel,
                    ),
                    bytes_in=len(target.encode("utf-8", "replace")),
                    exit_code=lambda r: r.exit_code,
                    bytes_out=lambda r: len(r.stdout) + len(r.stderr),
                )
            )
            getter: asyncio.Future[tuple[str, bytes]] | None = None
            try:
                while True:
                    getter = asyncio.ensure_future(chunks.get())
                    done, _ = await asyncio.wait(
                        {getter, work}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if getter not in done:
                        getter.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await getter
                        break
                    stream, data = getter.result()
                    if text := decoders[stream].decode(data):
                        yield OutputChunk(stream, text)
                while not chunks.empty():
                    stream, data = chunks.get_nowait()
                    if text := decoders[stream].decode(data):
                        yield OutputChunk(stream, text)
                yield await work
            finally:
                if getter is not None and not getter.done():
                    getter.cancel()  # cancelled while waiting (Stop): leave no task pending
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

    # -- tools (parsed on the host, never imported) ---------------------------------------

    async def read_docstring(self, module_path: str, function_name: str) -> str:
        """The docstring of a function in /tools, e.g. `("tools.example", "greet")`."""
        return await self._offload(
            tools_index.read_docstring, self.settings.tools_path, module_path, function_name
        )

    async def list_tools(self) -> list[ToolFunction]:
        """Every public function in /tools with its signature and docstring summary."""
        return await self._offload(tools_index.list_tools, self.settings.tools_path)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, check the image and adopt leftovers now instead of on first use."""
        await self._offload(self._manager.start)

    async def stop(self, user_id: str) -> None:
        """Stop the user's container (files kept; the next call starts it again)."""
        await self._offload(self._manager.stop, user_id)

    async def remove_container(self, user_id: str) -> None:
        """Remove the user's container; the workspace stays (the next call makes a container
        that mounts it again). Audited."""
        await self._audited(
            user_id, "remove_container", "", self._offload(self._manager.remove, user_id)
        )

    async def delete_session(self, user_id: str) -> None:
        """Delete the session's container and workspace, and the executor's records of them
        (warm-pool registry, last use): nothing of it is left. The one deletion verb, used by
        the UI and MCP alike; every call leaves an audit line, a failed one too."""
        await self._audited(
            user_id, "delete", "/workspace", self._offload(self._manager.delete, user_id)
        )

    async def apply_retention(self) -> list[str]:
        """Delete workspaces unused for `workspace_retention_days` now (also done hourly);
        the volumes deleted, each with an audit line."""
        return await self._offload(self._manager.apply_retention)

    def _retained(self, key: str, volume: str) -> None:
        self._audit.record(key, "retention_delete", volume, duration_s=0.0)

    async def reap_idle(self) -> list[str]:
        """Stop containers idle longer than `idle_timeout_s` now (the reaper does it regularly);
        the keys stopped."""
        return await self._offload(self._manager.reap_idle)

    def pool_status(self) -> PoolStatus:
        """How many warm containers are ready, of how many wanted (counted in memory: no
        engine call, so it never blocks)."""
        return self._manager.pool_status()

    def live_keys(self, owner: str) -> set[str]:
        """Keys of `owner` whose containers run now (known in memory: never blocks)."""
        return self._manager.live_keys(owner)

    # -- blocking verbs: for exit hooks, command lines and synchronous teardown only -----------

    def stop_all(self) -> None:
        """Stop every container this client started (files kept). Blocking: for exit hooks
        (`atexit`), where no event loop runs; async code awaits `aclose()`."""
        if self._manager.started:
            self._manager.stop_all()

    def cleanup_all(self, *, remove_volumes: bool = False, remove_images: bool = False) -> None:
        """Remove every container this app created (and the workspace volumes, each with an
        audit line, and the sandbox image with its base, when asked). Blocking: for command
        lines (`make cleanup`) and synchronous teardown; never call it on an event loop."""
        started = time.monotonic()
        for key, volume in self._manager.remove_all(volumes=remove_volumes):
            self._audit.record(
                key or volume, "cleanup_delete", volume, duration_s=time.monotonic() - started
            )
        if remove_images:
            for tag, _ in self.engine.images(self._manager.image_repositories):
                self.engine.remove_image(tag)

    async def sandbox_info(self, user_id: str) -> SandboxInfo:
        """Which container and volume the session uses, and whether they run."""
        return await self._offload(self._manager.info, user_id)

    async def inventory(self) -> Inventory:
        """What this app has on the engine (image, containers, pool, volumes), for doctor and
        cleanup; starts, adopts and removes nothing."""
        return await self._offload(self._manager.inventory)

    async def aclose(self, *, remove_containers: bool = True) -> None:
        """Shut down: remove this app's containers (volumes stay), stop the worker threads and
        let go of every connection (runners' and the engine's, when this client made it)."""
        with contextlib.suppress(ExecutorError):
            if remove_containers and self._manager.started:
                await self._offload(self._manager.remove_all)
            await self._offload(self._manager.close)
        self._pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.services.close)  # code mode's servers take a moment
        if self._owns_engine:
            self.engine.close()
        self._audit.close()


async def _result_of(stream: AsyncIterator[OutputChunk | ExecutionResult]) -> ExecutionResult:
    result = None
    async for item in stream:
        if isinstance(item, ExecutionResult):
            result = item
    assert result is not None
    return result
