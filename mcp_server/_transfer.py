"""Moving files through MCP messages: upload_file, download_file and the sandbox_file resource.

One MCP message carries a file base64-encoded inside JSON, and clients refuse messages over about
1 MiB (the SDK refuses request bodies over 4 MiB), so transfers are capped and a file too big for
one says how to move it in parts instead.
"""

# No `from __future__ import annotations` here: fastmcp reads the tools' annotations at runtime.

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import unquote

from fastmcp import FastMCP
from fastmcp.exceptions import ResourceError, ToolError
from fastmcp.resources import ResourceContent, ResourceResult
from fastmcp.tools import ToolResult
from mcp.types import ImageContent, ResourceLink, TextContent, ToolAnnotations
from pydantic import Field

from executor import DockerExecutionClient, ExecutorError

from ._calls import Caller, SandboxId, WorkspacePath, tool_error
from ._results import RESULT_BUDGET_BYTES, as_text, json_str, mime_of, resource_uri, structured
from .sandboxes import NoSuchSandbox, Sandboxes, SandboxHandle

TRANSFER_MAX_BYTES = 512 << 10  # largest file moved through one MCP message (base64 inside)
UPLOAD_MAX_BYTES = 3 << 20  # the SDK refuses request bodies over 4 MiB; base64 adds a third
URI_TEMPLATE = "sandbox://{sandbox_id}/workspace/{path*}"


def register_transfers(
    mcp: FastMCP,
    executor: DockerExecutionClient,
    sandboxes: Sandboxes,
    *,
    caller: Callable[[], Caller],
    sandbox_of: Callable[[Caller, str], Awaitable[SandboxHandle]],
    limit: int,
) -> None:
    """Add the file-transfer tools and the resource template to `mcp` (see build_mcp)."""

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
        path: WorkspacePath,
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
        path: WorkspacePath,
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
