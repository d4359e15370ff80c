"""Each configured server's state, as the UI panel, `make doctor` and
`mcp-code-executor servers list|check` show it. Pure functions over the config, the catalog and
(in the running app) the live connections: nothing here starts a server.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._redact import Redactor
from .catalog import Catalog
from .config import ServersConfig
from .stubs import module_names


@dataclass(frozen=True)
class ServerStatus:
    """One server as reported: state is `not started`, `starting`, `ready`, `failed`,
    `stopped`, `misconfigured` or `disabled`; tool_count None = never listed."""

    name: str
    module: str  # its module in the sandbox: tools.mcp.<module>
    transport: str  # "stdio" or "http"
    state: str
    tool_count: int | None
    last_error: str = ""
    users: tuple[str, ...] | None = None  # None = every user
    last_used: float | None = None  # time.time() of the last call
    pid: int | None = None  # a running stdio server's process

    @property
    def ok(self) -> bool:
        return self.state not in {"failed", "misconfigured"}


def statuses(
    config: ServersConfig,
    catalog: Catalog,
    connections: Mapping[str, Any] | None = None,
    modules: Mapping[str, str] | None = None,
) -> list[ServerStatus]:
    """Every server of `config`, with live state from `connections` where there is one."""
    connections = connections or {}
    modules = modules or module_names(s.name for s in config.servers)
    out = []
    for server in config.servers:
        connection = connections.get(server.name)
        listing = catalog.get(server.fingerprint)
        tools = len(listing.tools) if listing else None
        if server.disabled:
            state, error = "disabled", ""
        elif server.problem:
            state, error = "misconfigured", server.problem
        elif connection is not None:
            state, error = connection.state, connection.last_error
            if connection.tool_count is not None:
                tools = connection.tool_count
        else:
            state, error = "not started", ""
        out.append(
            ServerStatus(
                name=server.name,
                module=modules[server.name],
                transport=server.transport,
                state=state,
                tool_count=tools,
                last_error=error,
                users=server.users,
                last_used=getattr(connection, "last_used", None),
                pid=getattr(connection, "pid", None),
            )
        )
    return out


def _ago(when: float | None) -> str:
    if not when:
        return "never used"
    seconds = max(0.0, time.time() - when)
    if seconds < 90:
        return f"used {seconds:.0f} s ago"
    if seconds < 5400:
        return f"used {seconds / 60:.0f} min ago"
    return f"used {seconds / 3600:.1f} h ago"


def status_line(status: ServerStatus) -> str:
    """One line per server, e.g. `time (tools.mcp.time, stdio): ready, 2 tools, used 3 s ago`."""
    tools = "not listed yet" if status.tool_count is None else f"{status.tool_count} tools"
    users = (
        "every user" if status.users is None else "users: " + (", ".join(status.users) or "none")
    )
    line = (
        f"{status.name} (tools.mcp.{status.module}, {status.transport}): {status.state}, "
        f"{tools}, {users}, {_ago(status.last_used)}"
    )
    return line + (f"\n    last error: {status.last_error}" if status.last_error else "")


def doctor_checks(config: ServersConfig, catalog: Catalog) -> list[tuple[str, str, str]]:
    """(status, what, fix) for `make doctor`: from the config and the catalog, no starts."""
    where = config.path
    if not config.servers:
        return [
            (
                "ok",
                f"code mode: no MCP servers configured ({where} not found or empty)",
                "",
            )
        ]
    redact = Redactor(config.secrets())
    checks = [("ok", f"code mode: {len(config.servers)} MCP server(s) in {where}", "")]
    for status, server in zip(statuses(config, catalog), config.servers, strict=True):
        if status.state == "disabled":
            checks.append(("ok", f"MCP server {server.name}: disabled", ""))
            continue
        if status.state == "misconfigured":
            checks.append(
                ("fail", f"MCP server {server.name}: {status.last_error}", f"edit {where}")
            )
            continue
        if server.transport == "stdio" and shutil.which(server.command) is None:
            checks.append(
                (
                    "fail",
                    redact(f"MCP server {server.name}: command {server.command!r} not found"),
                    "install it, or give its full path in the servers file",
                )
            )
            continue
        listed = (
            f"{status.tool_count} tools listed"
            if status.tool_count is not None
            else "not listed yet (`mcp-code-executor servers check` lists it)"
        )
        checks.append(("ok", f"MCP server {server.name} ({server.transport}): {listed}", ""))
    return checks
