"""The app's executor with code mode attached: what `make run`, the MCP server's stdio mode, the
CLI and `adk run agent` all build, so each of them offers the same servers to sandbox code.
"""

from __future__ import annotations

import asyncio
from typing import Any

from executor import DockerExecutionClient, ToolFunction
from settings import Settings
from tool_surface.index import CombinedIndex, ToolIndex, ToolsDirIndex
from tool_surface.search import SearchHit, rank

from .hub import McpHub
from .index import McpToolIndex


def app_executor(settings: Settings, **overrides: Any) -> DockerExecutionClient:
    """The executor of `settings`, with the MCP servers of APP_MCP_SERVERS_FILE as code mode
    when any are configured (the executor then owns the hub and closes it with itself).

    Raises:
        McpConfigError: the servers file is malformed (a ConfigError: refuse to start).
    """
    hub = McpHub.from_settings(settings)
    bridge = hub if hub.config.servers else None
    if bridge is None:
        hub.close()
    return DockerExecutionClient.from_settings(
        settings.executor,
        tool_bridge=bridge,
        tool_call_timeout_s=settings.mcp_call_timeout_s,
        **overrides,
    )


def hub_of(executor: DockerExecutionClient) -> McpHub | None:
    """The code-mode hub an app executor carries (None without configured servers)."""
    bridge = executor.services.tools
    return bridge if isinstance(bridge, McpHub) else None


class McpSurfaceIndex:
    """Code mode's modules as the tool surface's `ToolIndex` for `tools.mcp` (discovery runs off
    the event loop: a first listing may wait for a server), ranked by the surface's one search."""

    def __init__(self, hub: McpHub) -> None:
        self._index = McpToolIndex(hub)

    async def list(self, owner: str) -> list[ToolFunction]:
        return await asyncio.to_thread(self._index.list, owner)

    async def docstring(self, owner: str, module: str, function: str) -> str:
        return await asyncio.to_thread(self._index.docstring, owner, module, function)

    async def search(self, owner: str, query: str, limit: int) -> list[SearchHit]:
        return rank(query, await asyncio.to_thread(self._index.candidates, owner), limit)


def surface_index(executor: DockerExecutionClient) -> ToolIndex:
    """Where the agent's and the MCP endpoint's discovery tools look: /tools, and with code
    mode each user's `tools.mcp` modules too."""
    tools = ToolsDirIndex(executor)
    hub = hub_of(executor)
    if hub is None:
        return tools
    return CombinedIndex({"tools": tools, "tools.mcp": McpSurfaceIndex(hub)})
