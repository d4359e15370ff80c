"""Code mode, the host side: the MCP servers a user already has become Python modules under
`tools.mcp` in their sandboxes, called from code, with credentials kept on the host.

    hub = McpHub.from_settings(settings, own_urls=[...])   # reads APP_MCP_SERVERS_FILE
    hub.tree(owner)                 # the generated /tools/mcp files for one user
    await hub.call(ctx, server, tool, arguments)   # one call from sandbox code
    McpToolIndex(hub).search(owner, "time zone")   # discovery
    hub.statuses()                  # for the UI and the CLI
    hub.close()                     # stops every server

`McpHub` implements `executor.bridge.ToolBridge`. Nothing here starts a thread or a process
until it is first needed.
"""

from .catalog import Catalog, ServerListing, ToolSpec
from .config import (
    ServerConfig,
    ServersConfig,
    is_own_endpoint,
    load_servers,
    own_urls,
    parse_servers,
)
from .errors import CodeModeError, McpConfigError, ServerUnavailableError, ToolCallError
from .hub import CATALOG_FILE, MAX_ARGUMENT_BYTES, McpHub
from .index import McpToolIndex
from .naming import assign_names, python_name
from .report import ServerStatus, doctor_checks, status_line, statuses
from .results import MAX_RESULT_BYTES
from .wiring import McpSurfaceIndex, app_executor, hub_of, surface_index

__all__ = [
    "CATALOG_FILE",
    "MAX_ARGUMENT_BYTES",
    "MAX_RESULT_BYTES",
    "Catalog",
    "CodeModeError",
    "McpConfigError",
    "McpHub",
    "McpSurfaceIndex",
    "McpToolIndex",
    "ServerConfig",
    "ServerListing",
    "ServerStatus",
    "ServerUnavailableError",
    "ServersConfig",
    "ToolCallError",
    "ToolSpec",
    "app_executor",
    "assign_names",
    "doctor_checks",
    "hub_of",
    "is_own_endpoint",
    "load_servers",
    "own_urls",
    "parse_servers",
    "python_name",
    "status_line",
    "statuses",
    "surface_index",
]
