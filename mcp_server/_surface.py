"""The tool surface's sandbox tools as MCP tools: the MCP adapter of `tool_surface`.

Name, description, parameters, executor call and result shaping come from the specs; this adds
what is MCP's: an optional `sandbox_id` on tools that use a sandbox (resolved for the verified
caller only), progress notifications while a command runs, the audit tags of MCP calls, the
wire budget (`fit`), executor errors as tool errors, and tool annotations from each spec's
effect.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastmcp import Context, FastMCP
from fastmcp.tools import ToolResult
from mcp.types import ToolAnnotations

from executor import ExecutorError, OutputChunk
from tool_surface import Effect, ToolCall, ToolSpec, ToolSurface, tool_function

from ._calls import Caller, SandboxId, tool_error
from ._results import fit, structured
from .live import ClientGone, ProgressNotifier, client_gone, with_progress
from .sandboxes import SandboxHandle

logger = logging.getLogger(__name__)

_KEYWORD = inspect.Parameter.KEYWORD_ONLY
_CONTEXT = inspect.Parameter("ctx", _KEYWORD, annotation=Context)
_SANDBOX_ID = inspect.Parameter("sandbox_id", _KEYWORD, default="", annotation=SandboxId)

ANNOTATIONS = {
    Effect.READ: ToolAnnotations(readOnlyHint=True, openWorldHint=False),
    Effect.WRITE: ToolAnnotations(destructiveHint=True, openWorldHint=False),
    Effect.RUN: ToolAnnotations(openWorldHint=False),
}


def register_surface_tools(
    mcp: FastMCP,
    surface: ToolSurface,
    *,
    caller: Callable[[], Caller],
    sandbox_of: Callable[[Caller, str], Awaitable[SandboxHandle]],
) -> None:
    """Add one MCP tool per spec of `surface` to `mcp` (see build_mcp)."""
    for spec in surface.specs:
        function = _mcp_function(surface, spec, caller, sandbox_of)
        mcp.tool(
            function,
            description=spec.description,
            output_schema=None,
            annotations=ANNOTATIONS[spec.effect],
        )


def _mcp_function(
    surface: ToolSurface,
    spec: ToolSpec,
    caller: Callable[[], Caller],
    sandbox_of: Callable[[Caller, str], Awaitable[SandboxHandle]],
) -> Callable[..., Awaitable[Any]]:
    async def body(ctx: Context, sandbox_id: str = "", **args: Any) -> ToolResult:
        who = caller()
        try:
            checked = surface.check(spec, args)
        except ExecutorError as exc:
            raise tool_error(exc) from None
        sandbox = await sandbox_of(who, sandbox_id) if spec.uses_sandbox else None
        progress = ProgressNotifier(ctx, checked["timeout"]) if spec.streams_output else None

        def output(chunk: OutputChunk) -> None:
            if progress is not None:
                progress.add(chunk.text)

        call = ToolCall(who.user, sandbox.key if sandbox else "", output)
        with who.tags():
            work = surface.run(spec, call, checked)
            try:
                reply = await (
                    work if progress is None else with_progress(work, progress, client_gone())
                )
            except ExecutorError as exc:
                raise tool_error(exc) from None
            except ClientGone:
                logger.info("MCP client of %s went away: command killed", call.key)
                raise
        named = {"sandbox_id": sandbox.sandbox_id} if sandbox else {}
        data = fit(lambda limit: {**reply.data(limit), **named}, surface.bounds.output_chars)
        return structured(data)

    extra = [_CONTEXT, _SANDBOX_ID] if spec.uses_sandbox else [_CONTEXT]
    return tool_function(spec, body, extra)
