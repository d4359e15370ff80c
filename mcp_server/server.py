"""The MCP server: the agent's sandbox tools for any MCP client, over the same executor.

The sandbox tools come from the tool surface, as the agent's do (`_surface.py` adapts them:
an optional `sandbox_id`, see sandboxes.py); file transfer (_transfer.py) and sandbox handles
are this server's own. Who calls is the verified bearer token's user (HTTP) or the local user
(stdio); every executor call runs under
`audit_tags(via="mcp", ...)` so the audit log says it came through MCP and with which token.

A running command's output goes out as progress notifications while it runs (at least one every
`HEARTBEAT_S` even when it is silent), and the result is clipped to fit well under the 1 MiB
message limit of MCP clients, the cut stated. A cancelled request (the client's cancel, a client
timeout, or its connection closing) cancels the handler, which stops the executor's stream: the
executor then kills the command and everything it started.
"""

# No `from __future__ import annotations` here: fastmcp reads the tools' annotations at runtime.

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.dependencies import get_access_token, get_http_headers
from fastmcp.tools import ToolResult
from mcp.types import ToolAnnotations
from pydantic import Field

from executor import DockerExecutionClient, ExecutorError
from tool_surface import SANDBOX_HEADER, ToolIndex, ToolSurface

from ._calls import Caller, tool_error
from ._results import RESULT_BUDGET_BYTES, structured
from ._surface import register_surface_tools
from ._transfer import register_transfers
from .auth import StoreTokenVerifier
from .live import HEARTBEAT_S
from .sandboxes import NoSuchSandbox, Sandboxes, SandboxHandle, TooManySandboxes
from .tokens import TokenStore

logger = logging.getLogger(__name__)

SERVER_NAME = "mcp-code-executor"


def build_mcp(
    executor: DockerExecutionClient,
    tokens: TokenStore | None,
    sandboxes: Sandboxes,
    *,
    local_user: str | None = None,
    output_limit_chars: int = 20_000,
    name: str = SERVER_NAME,
    index: ToolIndex | None = None,
) -> FastMCP:
    """The MCP server over `executor`.

    Args:
        executor: The app's executor (shared with the web UI: same sandboxes, limits, audit).
        tokens: The token store; every HTTP request then needs a bearer token from it. None for
            stdio, where `local_user` is the caller.
        sandboxes: Sandbox handles (and the app's chats) of each user.
        local_user: The user of a stdio server. Must be None when `tokens` is given: an HTTP
            server never falls back to a user nobody authenticated as.
        output_limit_chars: Most characters of stdout, stderr or file text in one result.
        index: Where list_tools, read_docstring and search_tools look (default: /tools).
    """
    if (tokens is None) == (local_user is None):
        raise ValueError("give tokens (HTTP) or local_user (stdio), not both or neither")
    limits = executor.settings
    surface = ToolSurface(executor, output_limit_chars, index)
    transport = "http" if tokens is not None else "stdio"
    # Every 2026-07-28 tools/call checks its Mcp-Param headers against the tool's input schema;
    # without a lookup the SDK runs the whole tools/list for that, on every call (a third of the
    # server's CPU per call, measured). The tools are the same for every caller: list them once.
    schemas: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def remember_schemas(server: FastMCP) -> AsyncIterator[dict[str, Any]]:
        tools = await server.list_tools(run_middleware=False)
        schemas.update({tool.name: tool.parameters for tool in tools})
        yield {}

    mcp = FastMCP(
        name,
        lifespan=remember_schemas,
        instructions=(
            "Run bash and Python in private Linux sandboxes (no network; numpy, pandas, "
            "matplotlib installed; files in /workspace persist). Calls without sandbox_id use "
            "your default sandbox; create_sandbox makes more, list_sandboxes lists them with "
            "your web-UI chats, whose ids work as sandbox_id too. While execute_bash or "
            "run_python runs, its new output arrives as progress notifications (message = new "
            "output; progress = seconds elapsed, total = timeout; at least one every "
            f"{HEARTBEAT_S:g} s); cancelling the request kills the command and everything it "
            "started. The sandbox keeps at most "
            f"{limits.output_limit_bytes:,} bytes of each output stream and stops a command that "
            f"writes more than {limits.output_flood_bytes:,}; a result is cut further to fit "
            f"{RESULT_BUDGET_BYTES:,} bytes, the cut stated in `note` and `output_cut`."
        ),
        auth=StoreTokenVerifier(tokens) if tokens is not None else None,
        mask_error_details=True,
        on_duplicate="error",
    )

    def caller() -> Caller:
        access = get_access_token()
        if access is not None:
            user = access.subject or access.client_id
            return Caller(user, (access.claims or {}).get("token_name"), transport)
        if local_user is not None:
            return Caller(local_user, None, transport)
        raise ToolError("not authenticated")  # the HTTP gate refuses such requests first

    async def sandbox_of(who: Caller, sandbox_id: str) -> SandboxHandle:
        chosen = sandbox_id.strip() or get_http_headers().get(SANDBOX_HEADER, "").strip()
        try:
            return await sandboxes.resolve(who.user, chosen or None)
        except NoSuchSandbox as exc:
            raise tool_error(exc) from None

    register_surface_tools(mcp, surface, caller=caller, sandbox_of=sandbox_of)

    @mcp.tool(
        description="Make a new, empty sandbox (its own container and /workspace) and return "
        "its sandbox_id; pass that id to the other tools to work in it. Its container starts "
        "on first use.",
        output_schema=None,
        annotations=ToolAnnotations(openWorldHint=False),
    )
    async def create_sandbox(
        title: Annotated[str, Field(description="A short name to recognise it by.")] = "",
    ) -> ToolResult:
        who = caller()
        try:
            made = await sandboxes.create(who.user, title)
        except TooManySandboxes as exc:
            raise tool_error(exc) from None
        return structured({"status": "ok", "sandbox_id": made.sandbox_id, "title": made.title})

    @mcp.tool(
        description="List your sandboxes: the MCP ones (kind 'mcp', including 'default') and "
        "your chats in the web UI (kind 'chat'; their ids work as sandbox_id, so you can work "
        "in a chat's files), with title, created, last used and whether it is running now.",
        output_schema=None,
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
    )
    async def list_sandboxes() -> ToolResult:
        who = caller()
        return structured({"status": "ok", "sandboxes": await sandboxes.list(who.user)})

    @mcp.tool(
        description="Stop and remove a sandbox's container. Its /workspace is kept (the next "
        "call starts a fresh container with the same files) unless delete_workspace is true; "
        "then the files are deleted and an MCP sandbox's id is forgotten.",
        output_schema=None,
        annotations=ToolAnnotations(destructiveHint=True, openWorldHint=False),
    )
    async def close_sandbox(
        sandbox_id: Annotated[str, Field(description="The sandbox to close ('default' too).")],
        delete_workspace: Annotated[
            bool, Field(description="Also delete its files (cannot be undone).")
        ] = False,
    ) -> ToolResult:
        who = caller()
        try:
            with who.tags():
                closed = await sandboxes.close(who.user, sandbox_id.strip(), delete_workspace)
        except (NoSuchSandbox, ExecutorError) as exc:
            raise tool_error(exc) from None
        return structured(
            {
                "status": "ok",
                "sandbox_id": closed.sandbox_id,
                "workspace_deleted": delete_workspace,
            }
        )

    register_transfers(
        mcp,
        executor,
        sandboxes,
        caller=caller,
        sandbox_of=sandbox_of,
        limit=output_limit_chars,
    )

    # fastmcp offers no setter for the SDK server's hook; None (not listed yet) skips the check,
    # as the SDK itself does when a listing fails.
    mcp._mcp_server.get_tool_input_schema = schemas.get
    return mcp
