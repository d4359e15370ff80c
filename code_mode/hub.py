"""McpHub: code mode's host side, the `executor.bridge.ToolBridge` the executor calls.

It owns one background thread with its own event loop, where every MCP session lives: one
session per configured server for the whole app process, started on first use (a call, or the
first listing the stubs need), shared by all users and calls (concurrent calls multiplexed),
stopped after `idle_timeout_s` unused and at `close()`, restarted on the next call after it
crashed. `call()` may be awaited from any loop (the executor's bridge loop): it hops to the
hub's loop, and cancelling it cancels the call there (the SDK then cancels it on the server).

The hub is the boundary: every call is checked against the calling user's servers and the
server's listed tools (whatever the sandbox's stub says), its arguments against the tool's input
schema, and its result against the size limit, before anything reaches sandbox code. Errors
and logs are passed through a redactor that removes every configured secret value.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from executor.bridge import CallContext, CallOutcome, ToolTree

from . import report, results
from ._connection import ServerConnection
from ._redact import RedactingFilter, Redactor
from .catalog import Catalog, ServerListing
from .config import ServerConfig, ServersConfig, load_servers
from .config import own_urls as default_own_urls
from .errors import CodeModeError, ServerUnavailableError, ToolCallError
from .report import ServerStatus
from .stubs import FunctionStub, ServerView, module_names, render_tree, tree_version

logger = logging.getLogger(__name__)

MAX_ARGUMENT_BYTES = 4 << 20
CATALOG_FILE = "mcp_catalog.json"  # in APP_DATA_DIR


@dataclass
class _Rendered:
    key: tuple[Any, ...]
    tree: ToolTree
    functions: dict[str, list[FunctionStub]] = field(default_factory=dict)


class McpHub:
    """The MCP servers of the app, for sandbox code (see the module docstring).

    Args:
        config: the parsed servers file (`load_servers`).
        catalog_path: where tool listings are kept across restarts (None: memory only).
        call_timeout_s: most seconds one call may take (`APP_MCP_CALL_TIMEOUT_S`).
        idle_timeout_s: a server unused this long is stopped (`APP_MCP_IDLE_TIMEOUT_S`).
        list_wait_s: how long `tree()` waits for servers never listed before.
        start_timeout_s: how long a server may take to start and list its tools.
        retry_failed_s: how often `tree()` tries again to list a server that failed.
        max_result_bytes: largest result (as JSON) handed to sandbox code.
    """

    def __init__(
        self,
        config: ServersConfig,
        *,
        catalog_path: Path | None = None,
        call_timeout_s: float = 120.0,
        idle_timeout_s: float = 300.0,
        list_wait_s: float = 5.0,
        start_timeout_s: float = 30.0,
        retry_failed_s: float = 60.0,
        max_result_bytes: int = results.MAX_RESULT_BYTES,
    ) -> None:
        self.config = config
        self.catalog = Catalog(catalog_path)
        self.call_timeout_s = call_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.list_wait_s = list_wait_s
        self.start_timeout_s = start_timeout_s
        self.retry_failed_s = retry_failed_s
        self.max_result_bytes = max_result_bytes
        self.redact = Redactor(config.secrets())
        self._log_filter = RedactingFilter(self.redact)
        self.modules = module_names(s.name for s in config.servers)
        self._connections = {
            s.name: ServerConnection(
                s,
                redact=self.redact,
                on_listing=self._listed,
                result_limit=max_result_bytes,
                start_timeout_s=start_timeout_s,
                call_timeout_s=call_timeout_s,
            )
            for s in config.servers
            if s.usable
        }
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._reaper: concurrent.futures.Future[None] | None = None
        self._closed = False
        self._listing: dict[str, concurrent.futures.Future[None]] = {}
        self._attempted: dict[str, float] = {}
        self._tried: set[str] = set()  # servers whose first listing attempt has ended
        self._rendered: dict[str, _Rendered] = {}
        self._validators: dict[tuple[str, str], Any] = {}

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        *,
        own_urls: Iterable[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> McpHub:
        """The app's hub: servers from `settings.mcp_servers_file` (`${VAR}` from `environ`,
        default the process environment with `.env` loaded), catalog in `settings.data_dir`.
        `own_urls` (default: `config.own_urls` of APP_HOST, APP_PORT, APP_PUBLIC_URL) are this
        app's MCP endpoint, refused as a server.

        Raises:
            McpConfigError: the servers file is malformed.
        """
        if own_urls is None:
            own_urls = default_own_urls(settings.host, settings.port, settings.public_url)
        config = load_servers(
            settings.mcp_servers_file, os.environ if environ is None else environ, own_urls
        )
        return cls(
            config,
            catalog_path=settings.data_dir / CATALOG_FILE,
            call_timeout_s=settings.mcp_call_timeout_s,
            idle_timeout_s=settings.mcp_idle_timeout_s,
        )

    # -- the hub's loop --------------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise CodeModeError("code mode is shut down")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="mcp-hub", daemon=True)
                self._thread.start()
                started.wait()
                self._loop = loop
                self._reaper = asyncio.run_coroutine_threadsafe(self._reap(), loop)
                self._log_filter.install()
            return self._loop

    def _submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        try:
            loop = self._ensure_loop()
        except CodeModeError:
            coro.close()
            raise
        return asyncio.run_coroutine_threadsafe(coro, loop)

    async def _reap(self) -> None:
        """Stop servers idle for longer than idle_timeout_s."""
        interval = max(0.05, min(self.idle_timeout_s / 4, 10.0))
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for connection in self._connections.values():
                since = connection.idle_since()
                if since is not None and now - since >= self.idle_timeout_s:
                    await connection.stop("idle")

    # -- listings --------------------------------------------------------------------------------
    def _listed(self, listing: ServerListing) -> None:
        keep = [s.fingerprint for s in self.config.servers]
        if self.catalog.put(listing, keep=keep):
            logger.info("MCP server %s: %d tools listed", listing.server, len(listing.tools))

    async def _list_one(self, name: str) -> None:
        try:
            with contextlib.suppress(ServerUnavailableError):
                await self._connections[name].ensure()
        finally:
            self._tried.add(name)

    def _start_listing(self, name: str) -> concurrent.futures.Future[None] | None:
        with self._lock:
            running = self._listing.get(name)
            if running is not None and not running.done():
                return running
            self._attempted[name] = time.monotonic()
        try:
            future = self._submit(self._list_one(name))
        except CodeModeError:
            return None
        with self._lock:
            self._listing[name] = future
        return future

    def _wanted(self, owner: str) -> list[ServerConfig]:
        return [s for s in self.config.servers if s.allows(owner)]

    def _prepare(self, servers: list[ServerConfig], wait: bool) -> None:
        """Start listings the stubs need; wait (bounded) for servers never tried before."""
        waits = []
        now = time.monotonic()
        for server in servers:
            if not server.usable or self.catalog.get(server.fingerprint) is not None:
                continue
            tried = self._attempted.get(server.name)
            if tried is not None and now - tried < self.retry_failed_s:
                future = self._listing.get(server.name)  # one still under way
            else:
                future = self._start_listing(server.name)
            if future is not None and not future.done() and server.name not in self._tried:
                waits.append(future)  # never listed nor failed yet: worth a short wait
        if wait and waits:
            concurrent.futures.wait(waits, timeout=self.list_wait_s)

    def _view(self, server: ServerConfig) -> ServerView:
        module = self.modules[server.name]
        if server.problem:
            return ServerView(server.name, module, None, f"misconfigured: {server.problem}")
        listing = self.catalog.get(server.fingerprint)
        connection = self._connections[server.name]
        reason = ""
        if connection.state == "failed":
            reason = connection.last_error or "it failed"
        elif listing is None:
            reason = "its tools are still being listed (it is starting); run the code again soon"
        return ServerView(server.name, module, listing, reason)

    def _render(self, owner: str, wait: bool = True) -> _Rendered:
        servers = self._wanted(owner)
        self._prepare(servers, wait)
        views = [self._view(s) for s in servers]
        key = tuple(
            (
                v.server,
                v.module,
                v.listing.fingerprint if v.listing else "",
                v.listing.listed_at if v.listing else 0.0,
                v.reason,
            )
            for v in views
        )
        with self._lock:
            cached = self._rendered.get(owner)
        if cached is not None and cached.key == key:
            return cached
        files, functions = render_tree(owner, views, self.redact)
        rendered = _Rendered(key, ToolTree(tree_version(files), files), functions)
        with self._lock:
            self._rendered[owner] = rendered
        return rendered

    # -- ToolBridge ----------------------------------------------------------------------------
    def tree(self, owner: str) -> ToolTree:
        """The /tools/mcp files for `owner` (only that user's servers); quick when cached, waits
        up to `list_wait_s` for servers never listed before."""
        return self._render(owner).tree

    async def call(
        self, ctx: CallContext, server: str, tool: str, arguments: dict[str, Any]
    ) -> CallOutcome:
        """One call made by sandbox code, checked and answered (never raises for the call's own
        failures: they are `CallOutcome(ok=False)`)."""
        try:
            loop = self._ensure_loop()
        except CodeModeError as exc:
            return CallOutcome(ok=False, error=str(exc))
        coro = self._answer(ctx, server, tool, arguments)
        if asyncio.get_running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def _answer(
        self, ctx: CallContext, server: str, tool: str, arguments: dict[str, Any]
    ) -> CallOutcome:
        try:
            return await self._call(ctx, server, tool, arguments)
        except asyncio.CancelledError:
            if self._closed:  # cancelled by close(), not by the caller
                return CallOutcome(ok=False, error="code mode shut down during the call")
            raise

    def _refuse(self, ctx: CallContext, error: str) -> CallOutcome:
        logger.info("refused an MCP call for %s/%s: %s", ctx.owner, ctx.session, error)
        return CallOutcome(ok=False, error=self.redact(error))

    async def _call(
        self, ctx: CallContext, server: str, tool: str, arguments: dict[str, Any]
    ) -> CallOutcome:
        config = self.config.get(server) if isinstance(server, str) else None
        if config is None or not config.allows(ctx.owner):
            mine = ", ".join(s.name for s in self._wanted(ctx.owner)) or "none"
            return self._refuse(
                ctx,
                f"no MCP server {server!r} is configured for user {ctx.owner!r} "
                f"(configured: {mine})",
            )
        if config.problem:
            return self._refuse(ctx, f"MCP server {server!r} is misconfigured: {config.problem}")
        listing = self.catalog.get(config.fingerprint)
        if listing is None:  # no stub can name a tool of it yet: nothing is started for this
            error = self._connections[server].last_error or "its tools have not been listed yet"
            return self._refuse(ctx, f"MCP server {server!r} is unavailable: {error}")
        spec = listing.tool(tool) if isinstance(tool, str) else None
        if spec is None:
            names = ", ".join(t.name for t in listing.tools[:40]) or "none"
            return self._refuse(
                ctx, f"MCP server {server!r} has no tool {tool!r} (its tools: {names})"
            )
        problem = self._check_arguments(config, spec, arguments)
        if problem:
            return self._refuse(ctx, problem)
        what = f"{server}.{tool}"
        try:
            result = await self._connections[server].call(tool, arguments, self.call_timeout_s)
        except (ServerUnavailableError, ToolCallError) as exc:
            return CallOutcome(ok=False, error=self.redact(str(exc)))
        answer = results.outcome(result, spec, what, self.max_result_bytes)
        if not answer.ok:
            return CallOutcome(ok=False, error=self.redact(answer.error))
        return answer

    def _check_arguments(self, config: ServerConfig, spec: Any, arguments: Any) -> str:
        what = f"{config.name}.{spec.name}"
        if not isinstance(arguments, dict) or not all(isinstance(k, str) for k in arguments):
            return f"the arguments of {what} must be an object with string keys"
        size = results.json_size(arguments)
        if size > MAX_ARGUMENT_BYTES:
            return (
                f"the arguments of {what} are {size:,} bytes as JSON, over the limit of "
                f"{MAX_ARGUMENT_BYTES:,} bytes"
            )
        validator = self._validator(config, spec)
        if validator is None:
            return ""
        from jsonschema.exceptions import best_match

        error = best_match(validator.iter_errors(arguments))
        if error is None:
            return ""
        where = "/".join(str(p) for p in error.absolute_path)
        return (
            f"bad arguments for {what}" + (f" at {where!r}" if where else "") + f": {error.message}"
        )

    def _validator(self, config: ServerConfig, spec: Any) -> Any:
        key = (config.fingerprint, spec.name)
        if key not in self._validators:
            from jsonschema import exceptions, validators

            schema = spec.input_schema or {"type": "object"}
            try:
                cls = validators.validator_for(schema)
                cls.check_schema(schema)
                self._validators[key] = cls(schema)
            except (exceptions.SchemaError, exceptions.UnknownType, TypeError) as exc:
                logger.info("%s.%s: input schema not checked (%s)", config.name, spec.name, exc)
                self._validators[key] = None
        return self._validators[key]

    # -- reports ---------------------------------------------------------------------------------
    def statuses(self) -> list[ServerStatus]:
        """Each configured server's state, for the UI and the CLI (starts nothing)."""
        return report.statuses(self.config, self.catalog, self._connections, self.modules)

    def check(self, names: Iterable[str] | None = None) -> list[ServerStatus]:
        """Start each (named) server, list its tools, stop it; the statuses after that."""
        wanted = set(names) if names is not None else None

        async def run() -> None:
            async def one(connection: ServerConnection) -> None:
                with contextlib.suppress(ServerUnavailableError):
                    await connection.ensure()
                failed, error = connection.state == "failed", connection.last_error
                await connection.stop("checked")
                if failed:
                    connection.state, connection.last_error = "failed", error

            await asyncio.gather(
                *(
                    one(c)
                    for name, c in self._connections.items()
                    if wanted is None or name in wanted
                )
            )

        self._submit(run()).result()
        return [s for s in self.statuses() if wanted is None or s.name in wanted]

    def functions(self, owner: str) -> dict[str, list[FunctionStub]]:
        """The stub functions of each of `owner`'s modules (what discovery shows)."""
        return self._render(owner).functions

    # -- shutdown --------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every server and the hub's thread. Idempotent; calls after it fail cleanly."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None:
            return

        async def stop_all() -> None:
            if self._reaper is not None:
                self._reaper.cancel()
            await asyncio.gather(*(c.stop("shutdown") for c in self._connections.values()))
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:  # calls still waiting end now (their callers get an answer)
                task.cancel()
            if others:
                await asyncio.wait(others, timeout=5)

        try:
            asyncio.run_coroutine_threadsafe(stop_all(), loop).result(timeout=30)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            logger.warning("MCP servers did not all stop in time: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        if not loop.is_running():
            loop.close()
        self._log_filter.remove()
