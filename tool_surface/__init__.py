"""The tool surface: one definition per sandbox tool, exposed by the agent and the MCP server.

`frontend -> agent / mcp_server -> tool_surface -> executor -> engines`. Each tool's name,
description, parameters (type, default, bounds, text), executor call and result shaping live
here (definitions.py, shaping.py); `agent/tools.py` turns the specs into ADK function tools and
`mcp_server/server.py` into MCP tools, both with `tool_function`, so the model and MCP clients
read the same descriptions and schemas and get the same notes. Discovery (`list_tools`,
`read_docstring`, `search_tools`) asks a `ToolIndex` (index.py) for the calling user.
No ADK, no fastmcp here.
"""

# How a caller names its sandbox outside the arguments (defined with the keys): the app's agent
# sends its chat's id in this HTTP header when it reaches the tools over MCP.
from executor import SANDBOX_HEADER

from .definitions import DEFAULT_TIMEOUT_S, MAX_SEARCH_RESULTS, TOOL_NAMES, define_tools
from .index import CombinedIndex, ToolIndex, ToolsDirIndex
from .params import check_args, tool_function
from .search import SearchHit, rank
from .shaping import describe_execution
from .spec import Args, Backend, Bounds, Effect, Param, Reply, ToolCall, ToolSpec
from .surface import ToolSurface

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_SEARCH_RESULTS",
    "SANDBOX_HEADER",
    "TOOL_NAMES",
    "Args",
    "Backend",
    "Bounds",
    "CombinedIndex",
    "Effect",
    "Param",
    "Reply",
    "SearchHit",
    "ToolCall",
    "ToolIndex",
    "ToolSpec",
    "ToolSurface",
    "ToolsDirIndex",
    "check_args",
    "define_tools",
    "describe_execution",
    "rank",
    "tool_function",
]
