"""The agent's function tools: the tool surface's sandbox tools as ADK function tools.

Not to be confused with the top-level `tools/` folder, which is code that runs *inside* the
sandbox. What each tool is (name, description, parameters, call, result) is defined once in
`tool_surface`; this adapter adds only what is ADK's: the caller is the ADK session
(ToolContext: user id and session id -> executor key, so two chats never share a container),
a running command's output is published live to the chat, and an executor error comes back as
`{"status": "error", "error": ..., "hint": ...}` so the model can recover, never as an
exception that ends the turn.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from google.adk.tools import ToolContext

from executor import DockerExecutionClient, ExecutorError, OutputChunk, chat_key
from executor.hints import hint_for
from tool_surface import ToolCall, ToolIndex, ToolSpec, ToolSurface, tool_function

from .live import LiveOutputHub

logger = logging.getLogger(__name__)

_CONTEXT = inspect.Parameter("tool_context", inspect.Parameter.KEYWORD_ONLY, annotation=ToolContext)


def error_result(exc: Exception) -> dict[str, Any]:
    """An executor error as data the model can act on."""
    return {"status": "error", "error": str(exc), "hint": hint_for(exc)}


def make_tools(
    executor: DockerExecutionClient,
    output_limit_chars: int,
    live: LiveOutputHub | None = None,
    index: ToolIndex | None = None,
) -> list[Callable]:
    """The function tools, bound to `executor`, in `tool_surface.TOOL_NAMES` order.

    With `live`, a running command's output is published as it comes (the UI shows it);
    `index` is where discovery looks (default: the executor's /tools)."""
    surface = ToolSurface(executor, output_limit_chars, index)
    return [_function_tool(surface, spec, live) for spec in surface.specs]


def _function_tool(surface: ToolSurface, spec: ToolSpec, live: LiveOutputHub | None) -> Callable:
    async def body(tool_context: ToolContext, **args: Any) -> dict[str, Any]:
        key = chat_key(tool_context.user_id, tool_context.session.id)
        output = None
        if live is not None and spec.streams_output:
            call_id = tool_context.function_call_id or ""

            def output(chunk: OutputChunk) -> None:
                live.publish(key, call_id, chunk.stream, chunk.text)

        call = ToolCall(owner=tool_context.user_id, key=key, output=output)
        try:
            reply = await surface.run(spec, call, args)
        except ExecutorError as exc:
            return error_result(exc)
        return reply.data(surface.bounds.output_chars)

    return tool_function(spec, body, [_CONTEXT])


def on_tool_error(
    tool: Any, args: dict[str, Any], tool_context: ToolContext, error: BaseException
) -> dict | None:
    """ADK callback: an unexpected exception in any tool reaches the model as data.

    ADK also calls it for a cancelled call (the person pressed Stop), for cleanup only: that is
    no failure, so it is logged at INFO and answers nothing."""
    name = getattr(tool, "name", tool)
    if isinstance(error, asyncio.CancelledError):
        logger.info("tool %s stopped (the turn was stopped)", name)
        return None
    logger.error("tool %s failed", name, exc_info=error)
    return {
        "status": "error",
        "error": f"{type(error).__name__}: {error}",
        "hint": "An internal error happened in the tool. Try again once, then tell the user.",
    }
