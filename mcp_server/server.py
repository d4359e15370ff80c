"""The MCP server: the agent's sandbox tools for any MCP client, over the same executor.

Tools have the agent's names and meanings (agent/tools.py) plus an optional `sandbox_id` (see
sandboxes.py), file transfer and sandbox handles. Who calls is the verified bearer token's user
(HTTP) or the local user (stdio); every executor call runs under `audit_tags(via="mcp", ...)` so
the audit log says it came through MCP and with which token.

A running command's output goes out as progress notifications while it runs (at least one every
`HEARTBEAT_S` even when it is silent), and the result is clipped to fit well under the 1 MiB
message limit of MCP clients, the cut stated. A cancelled request (the client's cancel, a client
timeout, or its connection closing) cancels the handler, which stops the executor's stream: the
executor then kills the command and everything it started.
"""

# No `from __future__ import annotations` here: fastmcp reads the tools' annotations at runtime,
# and their Annotated aliases (limits in the descriptions) are local to build_mcp.

import base64
import binascii
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import unquote

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ResourceError, ToolError
from fastmcp.resources import ResourceContent, ResourceResult
from fastmcp.server.dependencies import get_access_token, get_http_headers
from fastmcp.tools import ToolResult
from mcp.types import ImageContent, ResourceLink, TextContent, ToolAnnotations
from pydantic import Field

from executor import (
    DockerExecutionClient,
    ExecutorError,
    audit_tags,
)
from executor.hints import HINT_SEPARATOR, hint_for

from ._results import (
    RESULT_BUDGET_BYTES,
    as_text,
    describe_result,
    fit_texts,
    json_str,
    mime_of,
    resource_uri,
    structured,
)
from .auth import StoreTokenVerifier
from .live import HEARTBEAT_S, ClientGone, LiveOutput, client_gone, consume
from .sandboxes import NoSuchSandbox, Sandbox, Sandboxes, TooManySandboxes
from .tokens import TokenStore

logger = logging.getLogger(__name__)

SERVER_NAME = "mcp-code-executor"
TRANSFER_MAX_BYTES = 512 << 10  # largest file moved through one MCP message (base64 inside)
UPLOAD_MAX_BYTES = 3 << 20  # the SDK refuses request bodies over 4 MiB; base64 adds a third
URI_TEMPLATE = "sandbox://{sandbox_id}/workspace/{path*}"
# A request header naming the sandbox for calls that name none: the app's agent sends its chat's
# id here, so the model never has to. Resolved like `sandbox_id` (the caller's own only).
SANDBOX_HEADER = "x-sandbox-id"

_HINTS: list[tuple[type[Exception], str]] = [  # the server's own; the executor's come after
    (NoSuchSandbox, "Use an id from list_sandboxes, or leave sandbox_id empty for the default."),
    (TooManySandboxes, "Close sandboxes you no longer need with close_sandbox."),
]


def tool_error(exc: Exception) -> ToolError:
    """An executor (or handle) error as a tool error: its message and what to do about it."""
    return ToolError(f"{exc}{HINT_SEPARATOR}{hint_for(exc, _HINTS)}")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the verified user (and token name), and over which transport."""

    user: str
    token_name: str | None
    transport: str  # "http" or "stdio"

    def tags(self) -> contextlib.AbstractContextManager[None]:
        return audit_tags(via="mcp", transport=self.transport, token=self.token_name)


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

    SandboxId = Annotated[
        str,
        Field(
            description="A sandbox id from create_sandbox or list_sandboxes (a web-UI chat's id "
            "works too); empty = your default sandbox."
        ),
    ]
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
        path: Annotated[str, Field(description="File path; relative paths are in /workspace.")],
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
        path: Annotated[str, Field(description="File path; relative paths are in /workspace.")],
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
        description=(
            "Store a file (any bytes, given as base64) in /workspace; parent folders are "
            f"created. At most {UPLOAD_MAX_BYTES:,} bytes per call (MCP requests are limited "
            "to 4 MiB)."
        ),
        output_schema=None,
        annotations=ToolAnnotations(destructiveHint=True, openWorldHint=False),
    )
    async def upload_file(
        path: Annotated[str, Field(description="File path; relative paths are in /workspace.")],
        content_base64: Annotated[str, Field(description="The file's bytes, base64-encoded.")],
        sandbox_id: SandboxId = "",
    ) -> ToolResult:
        who = caller()
        sandbox = await sandbox_of(who, sandbox_id)
        try:
            data = base64.b64decode(content_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ToolError(
                f"content_base64 is not valid base64 ({exc}).\nHint: encode the file's bytes "
                "with standard base64 (A-Z a-z 0-9 + /, padded with =)."
            ) from None
        if len(data) > UPLOAD_MAX_BYTES:
            raise ToolError(
                f"{len(data):,} bytes is over the {UPLOAD_MAX_BYTES:,}-byte limit of one upload."
                "\nHint: split the file and upload the parts, then join them with execute_bash "
                "(cat part1 part2 > file)."
            )
        try:
            with who.tags():
                await executor.upload_file(sandbox.key, path, data)
        except ExecutorError as exc:
            raise tool_error(exc) from None
        return structured(
            {"status": "ok", "sandbox_id": sandbox.sandbox_id, "path": path, "bytes": len(data)}
        )

    @mcp.tool(
        description=(
            "Get a file from /workspace. Text up to about "
            f"{limit:,} characters comes back inline, images (PNG, JPEG, GIF, WebP) up to "
            f"{TRANSFER_MAX_BYTES:,} bytes as image content, anything else up to "
            f"{TRANSFER_MAX_BYTES:,} bytes as a resource link ({URI_TEMPLATE}) to read with "
            "resources/read. Larger files do not fit one MCP message: read text with read_file "
            "(offset, line_count) or split the file with execute_bash."
        ),
        output_schema=None,
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
    )
    async def download_file(
        path: Annotated[str, Field(description="File path; relative paths are in /workspace.")],
        sandbox_id: SandboxId = "",
    ) -> ToolResult:
        who = caller()
        sandbox = await sandbox_of(who, sandbox_id)
        try:
            with who.tags():
                data = await executor.download_file(sandbox.key, path)
        except ExecutorError as exc:
            raise tool_error(exc) from None
        size = len(data)
        if size > TRANSFER_MAX_BYTES:
            raise ToolError(
                f"{path} is {size:,} bytes, more than fits one MCP message "
                f"({TRANSFER_MAX_BYTES:,} bytes).\nHint: read text with read_file (offset, "
                "line_count), or split it with execute_bash (split -b 400k FILE part_) and "
                "download the parts."
            )
        mime = mime_of(path, data)
        caption = f"{path} ({size:,} bytes, {mime}) in sandbox {sandbox.sandbox_id}"
        if mime.startswith("image/") and mime != "image/svg+xml":
            image = ImageContent(
                type="image", data=base64.b64encode(data).decode("ascii"), mime_type=mime
            )
            return ToolResult(content=[TextContent(type="text", text=caption), image])
        text = as_text(data)
        if text is not None and len(text) <= limit:
            return ToolResult(content=[TextContent(type="text", text=text)])
        uri = resource_uri(sandbox.sandbox_id, path)
        link = ResourceLink(
            type="resource_link",
            uri=uri,
            name=path.rsplit("/", 1)[-1] or path,
            mime_type=mime,
            size=size,
        )
        note = f"{caption}: too large to show inline; read it with resources/read {uri}"
        return ToolResult(content=[TextContent(type="text", text=note), link])

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

    @mcp.resource(
        URI_TEMPLATE,
        name="sandbox_file",
        description=(
            "A file in a sandbox's /workspace (sandbox_id as in list_sandboxes; 'default' for "
            f"the default sandbox). Files up to {TRANSFER_MAX_BYTES:,} bytes."
        ),
    )
    async def sandbox_file(sandbox_id: str, path: str) -> ResourceResult:
        who = caller()
        try:
            sandbox = await sandboxes.resolve(who.user, sandbox_id)
            with who.tags():
                data = await executor.download_file(sandbox.key, "/workspace/" + unquote(path))
        except (NoSuchSandbox, ExecutorError) as exc:
            raise ResourceError(str(tool_error(exc))) from None
        if len(data) > TRANSFER_MAX_BYTES:
            raise ResourceError(
                f"{path} is {len(data):,} bytes, more than fits one MCP message "
                f"({TRANSFER_MAX_BYTES:,} bytes); split it with execute_bash."
            )
        mime = mime_of(path, data)
        text = as_text(data)
        if text is not None and len(json_str(text)) <= RESULT_BUDGET_BYTES:
            return ResourceResult([ResourceContent(text, mime_type=mime)])
        return ResourceResult([ResourceContent(data, mime_type=mime)])

    # fastmcp offers no setter for the SDK server's hook; None (not listed yet) skips the check,
    # as the SDK itself does when a listing fails.
    mcp._mcp_server.get_tool_input_schema = schemas.get
    return mcp
