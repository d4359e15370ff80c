"""The MCP server: the agent's sandbox tools for any MCP client, over the same executor.

Tools have the agent's names and meanings (agent/tools.py) plus an optional `sandbox_id` (see
sandboxes.py), file transfer (_transfer.py) and sandbox handles. Who calls is the verified
bearer token's user (HTTP) or the local user (stdio); every executor call runs under
`audit_tags(via="mcp", ...)` so the audit log says it came through MCP and with which token.

A running command's output goes out as progress notifications while it runs (at least one every
`HEARTBEAT_S` even when it is silent), and the result is clipped to fit well under the 1 MiB
message limit of MCP clients, the cut stated. A cancelled request (the client's cancel, a client
timeout, or its connection closing) cancels the handler, which stops the executor's stream: the
executor then kills the command and everything it started.
"""

# No `from __future__ import annotations` here: fastmcp reads the tools' annotations at runtime,
# and the Annotated aliases with limits in their descriptions are local to build_mcp.

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.dependencies import get_access_token, get_http_headers
from fastmcp.tools import ToolResult
from mcp.types import ToolAnnotations
from pydantic import Field

from executor import DockerExecutionClient, ExecutorError

from ._calls import Caller, SandboxId, WorkspacePath, tool_error
from ._results import describe_result, fit_texts, structured
from ._transfer import register_transfers
from .auth import StoreTokenVerifier
from .live import HEARTBEAT_S, ClientGone, LiveOutput, client_gone, consume
from .sandboxes import NoSuchSandbox, Sandbox, Sandboxes, TooManySandboxes
from .tokens import TokenStore

logger = logging.getLogger(__name__)

SERVER_NAME = "mcp-code-executor"
# A request header naming the sandbox for calls that name none: the app's agent sends its chat's
# id here, so the model never has to. Resolved like `sandbox_id` (the caller's own only).
SANDBOX_HEADER = "x-sandbox-id"


def build_mcp(
    executor: DockerExecutionClient,
    tokens: TokenStore | None,
    sandboxes: Sandboxes,
    *,
    local_user: str | None = None,
    output_limit_chars: int = 20_000,
    name: str = SERVER_NAME,
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
    """
    if (tokens is None) == (local_user is None):
        raise ValueError("give tokens (HTTP) or local_user (stdio), not both or neither")
    spec = executor.settings
    max_timeout = spec.max_timeout_s
    limit = output_limit_chars
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
            "your web-UI chats, whose ids work as sandbox_id too."
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

    async def sandbox_of(who: Caller, sandbox_id: str) -> Sandbox:
        chosen = sandbox_id.strip() or get_http_headers().get(SANDBOX_HEADER, "").strip()
        try:
            return await sandboxes.resolve(who.user, chosen or None)
        except NoSuchSandbox as exc:
            raise tool_error(exc) from None

    Timeout = Annotated[
        float,
        Field(description=f"Seconds before it is killed (exit code 124); at most {max_timeout:g}."),
    ]
    output_note = (
        f"stdout and stderr are each cut to about {limit:,} characters (head and tail kept, the "
        "cut stated in `note` and `output_cut`); the sandbox keeps at most "
        f"{spec.output_limit_bytes:,} bytes per stream and stops a command that writes more than "
        f"{spec.output_flood_bytes:,}. Write large output to a file and read it in parts with "
        "read_file. While it runs, new output arrives as progress notifications (message = new "
        f"output; progress = seconds elapsed, total = timeout; at least one every {HEARTBEAT_S:g}"
        " s). Cancelling the request kills the command and everything it started."
    )

    async def run_stream(
        ctx: Context, who: Caller, sandbox: Sandbox, kind: str, code: str, timeout: float
    ) -> ToolResult:
        with who.tags():
            if kind == "bash":
                stream = executor.stream_bash(sandbox.key, code, timeout=timeout)
            else:
                stream = executor.stream_python(sandbox.key, code, timeout=timeout)
            try:
                result = await consume(stream, LiveOutput(ctx, timeout), client_gone())
            except ExecutorError as exc:
                raise tool_error(exc) from None
            except ClientGone:
                logger.info("MCP client of %s went away: command killed", sandbox.key)
                raise
        data = describe_result(
            result, sandbox, timeout, limit, max_timeout, spec.memory_limit_bytes
        )
        return structured(data)

    @mcp.tool(
        description=(
            "Run a bash command in a private Linux sandbox and return its exit code and output. "
            "The working directory is /workspace (files persist there between calls). Python 3 "
            "with numpy, pandas and matplotlib is installed; there is no network. Every process "
            "the command starts is killed when it returns, so start a server and use it in one "
            "command. " + output_note
        ),
        output_schema=None,
        annotations=ToolAnnotations(openWorldHint=False),
    )
    async def execute_bash(
        command: Annotated[str, Field(description='Bash command line(s), e.g. "ls -la".')],
        ctx: Context,
        timeout: Timeout = 60,
        sandbox_id: SandboxId = "",
    ) -> ToolResult:
        who = caller()
        sandbox = await sandbox_of(who, sandbox_id)
        return await run_stream(ctx, who, sandbox, "bash", command, timeout)

    @mcp.tool(
        description=(
            "Run Python code in the sandbox's persistent interpreter (like a notebook cell): "
            "variables, imports and definitions stay for the next run_python call in the same "
            "sandbox, and the value of a final expression is printed. If the code times out or "
            "crashes the interpreter restarts and its state is lost (the result says so). "
            + output_note
        ),
        output_schema=None,
        annotations=ToolAnnotations(openWorldHint=False),
    )
    async def run_python(
        code: Annotated[str, Field(description="Python source to run.")],
        ctx: Context,
        timeout: Timeout = 60,
        sandbox_id: SandboxId = "",
    ) -> ToolResult:
        who = caller()
        sandbox = await sandbox_of(who, sandbox_id)
        return await run_stream(ctx, who, sandbox, "python", code, timeout)

    @mcp.tool(
        description="Clear the sandbox's Python interpreter: forget all variables, imports and "
        "definitions.",
        output_schema=None,
    )
    async def reset_python(sandbox_id: SandboxId = "") -> ToolResult:
        who = caller()
        sandbox = await sandbox_of(who, sandbox_id)
        try:
            with who.tags():
                had_state = await executor.reset_python(sandbox.key)
        except ExecutorError as exc:
            raise tool_error(exc) from None
        return structured({"status": "ok", "sandbox_id": sandbox.sandbox_id, "cleared": had_state})

    @mcp.tool(
        description=(
            "Read lines of a text file in /workspace, /tools or /skills. At most about "
            f"{limit:,} characters come back; the result says how to read further."
        ),
        output_schema=None,
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
    )
    async def read_file(
        path: WorkspacePath,
        offset: Annotated[int, Field(description="Lines to skip from the start.")] = 0,
        line_count: Annotated[int, Field(description="Lines to return; 0 = as many as fit.")] = 0,
        sandbox_id: SandboxId = "",
    ) -> ToolResult:
        who = caller()
        sandbox = await sandbox_of(who, sandbox_id)
        try:
            with who.tags():
                text = await executor.read_file(
                    sandbox.key, path, offset=offset, line_count=line_count or None
                )
        except ExecutorError as exc:
            raise tool_error(exc) from None

        def build(texts: dict[str, str], cuts: dict[str, int]) -> dict[str, Any]:
            data: dict[str, Any] = {
                "status": "ok",
                "sandbox_id": sandbox.sandbox_id,
                "path": path,
                "offset": offset,
                "content": texts["content"],
            }
            if cuts["content"] or "[... read_file stopped at" in text:
                data["note"] = (
                    "The file is longer than what is shown: read further with offset and "
                    "line_count."
                )
            return data

        data, _ = fit_texts(build, {"content": text}, limit)
        return structured(data)

    @mcp.tool(
        description="Create or overwrite a text file in /workspace (parent folders are created).",
        output_schema=None,
        annotations=ToolAnnotations(destructiveHint=True, openWorldHint=False),
    )
    async def write_file(
        path: WorkspacePath,
        content: Annotated[str, Field(description="The complete text to write.")],
        sandbox_id: SandboxId = "",
    ) -> ToolResult:
        who = caller()
        sandbox = await sandbox_of(who, sandbox_id)
        try:
            with who.tags():
                await executor.write_file(sandbox.key, path, content)
        except ExecutorError as exc:
            raise tool_error(exc) from None
        size = len(content.encode("utf-8", "surrogatepass"))
        return structured(
            {"status": "ok", "sandbox_id": sandbox.sandbox_id, "path": path, "bytes": size}
        )

    @mcp.tool(
        description="List a directory in the sandbox: names, sizes (bytes) and modification "
        "times (at most 500 entries).",
        output_schema=None,
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
    )
    async def list_files(
        path: Annotated[
            str, Field(description="Directory in /workspace, /tools or /skills.")
        ] = "/workspace",
        recursive: Annotated[bool, Field(description="Include subdirectories' entries.")] = False,
        sandbox_id: SandboxId = "",
    ) -> ToolResult:
        who = caller()
        sandbox = await sandbox_of(who, sandbox_id)
        try:
            with who.tags():
                entries = await executor.list_files(sandbox.key, path, recursive=recursive)
        except ExecutorError as exc:
            raise tool_error(exc) from None
        listed = [
            {
                "path": e.path,
                "name": e.name + ("/" if e.is_dir else ""),
                "size": e.size,
                "modified": datetime.fromtimestamp(e.modified, UTC).strftime("%Y-%m-%d %H:%M"),
            }
            for e in entries[:500]
        ]
        data: dict[str, Any] = {
            "status": "ok",
            "sandbox_id": sandbox.sandbox_id,
            "path": path,
            "entries": listed,
        }
        if len(entries) > 500:
            data["note"] = f"{len(entries) - 500} more entries not shown."
        return structured(data)

    @mcp.tool(
        description="List the Python tool modules in /tools: each function's signature and "
        "summary. Use read_docstring for one function's full documentation, then import and "
        "call it from run_python or execute_bash.",
        output_schema=None,
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
    )
    async def list_tools() -> ToolResult:
        caller()
        try:
            found = await executor.list_tools()
        except ExecutorError as exc:
            raise tool_error(exc) from None
        return structured(
            {"status": "ok", "tools": [f"{t.module}.{t.signature}  # {t.summary}" for t in found]}
        )

    @mcp.tool(
        description="Read the full docstring of one function in /tools.",
        output_schema=None,
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
    )
    async def read_docstring(
        module_path: Annotated[str, Field(description='Dotted module path, e.g. "tools.example".')],
        function_name: Annotated[str, Field(description='Function name, e.g. "greet".')],
    ) -> ToolResult:
        caller()
        try:
            doc = await executor.read_docstring(module_path, function_name)
        except ExecutorError as exc:
            raise tool_error(exc) from None
        return structured({"status": "ok", "docstring": doc or "(no docstring)"})

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
        limit=limit,
    )

    # fastmcp offers no setter for the SDK server's hook; None (not listed yet) skips the check,
    # as the SDK itself does when a listing fails.
    mcp._mcp_server.get_tool_input_schema = schemas.get
    return mcp
