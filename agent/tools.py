"""The agent's function tools: host-side ADK tools that drive the calling session's sandbox.

Not to be confused with the top-level `tools/` folder, which is code that runs *inside* the
sandbox. Each tool reaches the container of the ADK session that called it (ToolContext: user id
and session id -> executor key), so two chats never share a container. Results are dicts; an
executor error comes back as `{"status": "error", "error": ..., "hint": ...}` so the model can
recover, never as an exception that ends the turn. Output handed to the model is capped.

The docstring is the tool's description and each parameter carries its own description and
bounds (pydantic `Field` in `Annotated`), which ADK turns into the JSON schema the model sees.
This module deliberately does not use `from __future__ import annotations`: the annotations
are evaluated where the tools are made, so the bounds can come from the executor's settings.
"""

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from google.adk.tools import ToolContext
from pydantic import Field

from executor import DockerExecutionClient, ExecutionResult, ExecutorError, OutputChunk, chat_key
from executor.text import clip

from .live import LiveOutput
from .tool_results import describe_execution, error_result

logger = logging.getLogger(__name__)

TOOL_NAMES = (
    "execute_bash",
    "run_python",
    "reset_python",
    "read_file",
    "write_file",
    "read_docstring",
    "list_files",
    "list_tools",
)
_LIST_SHOWN = 500


def sandbox_key(user_id: str, session_id: str) -> str:
    """The executor key of one chat: the UI and MCP compute the same to reach the same sandbox."""
    return chat_key(user_id, session_id)


def make_tools(
    executor: DockerExecutionClient, output_limit_chars: int, live: LiveOutput | None = None
) -> list[Callable]:
    """The function tools, bound to `executor`. Their docstrings are what the model reads.

    With `live`, a running command's output is published as it comes (the UI shows it)."""
    max_timeout = int(executor.settings.max_timeout_s)
    memory = executor.settings.memory_limit_bytes
    shown = f"{output_limit_chars:,}"
    Timeout = Annotated[
        int, Field(ge=1, le=max_timeout, description="Seconds before it is stopped (exit 124).")
    ]
    Path = Annotated[str, Field(description="A file path; relative paths are inside /workspace.")]

    def key(tool_context: ToolContext) -> str:
        return sandbox_key(tool_context.user_id, tool_context.session.id)

    async def run_streamed(
        stream: AsyncIterator[OutputChunk | ExecutionResult],
        tool_context: ToolContext,
        timeout: int,
    ) -> dict:
        """Consume an executor stream: publish output live, return the result as data."""
        started = time.monotonic()
        result: ExecutionResult | None = None
        try:
            async for item in stream:
                if isinstance(item, ExecutionResult):
                    result = item
                elif live is not None:
                    call_id = tool_context.function_call_id or ""
                    live.publish(key(tool_context), call_id, item.stream, item.text)
        except ExecutorError as exc:
            return error_result(exc)
        assert result is not None
        return describe_execution(
            result,
            timeout=timeout,
            duration_s=time.monotonic() - started,
            output_limit=output_limit_chars,
            max_timeout=max_timeout,
            memory_limit=memory,
        )

    async def execute_bash(
        command: Annotated[str, Field(description="Bash command line(s), e.g. 'ls -la'.")],
        tool_context: ToolContext,
        timeout: Timeout = 60,
    ) -> dict:
        """Run bash in this chat's private Linux sandbox (cwd /workspace, kept between calls;
        Python 3 with numpy, pandas, matplotlib; no network). Every process the command starts
        is killed when it returns. stdout and stderr are each cut to about {shown} characters:
        write big output to a file and read parts with read_file."""
        stream = executor.stream_bash(key(tool_context), command, timeout=timeout)
        return await run_streamed(stream, tool_context, timeout)

    async def run_python(
        code: Annotated[str, Field(description="Python source, like a notebook cell.")],
        tool_context: ToolContext,
        timeout: Timeout = 60,
    ) -> dict:
        """Run Python in this chat's persistent interpreter: variables, imports and definitions
        stay for the next call, and a final expression's value is printed. numpy, pandas and
        matplotlib are installed (plt.show() saves the figure and shows it to the user); cwd is
        /workspace. A timeout or crash restarts the interpreter and says its state is lost."""
        stream = executor.stream_python(key(tool_context), code, timeout=timeout)
        return await run_streamed(stream, tool_context, timeout)

    async def reset_python(tool_context: ToolContext) -> dict:
        """Clear this chat's Python interpreter: forget all variables, imports and definitions."""
        try:
            had_state = await executor.reset_python(key(tool_context))
        except ExecutorError as exc:
            return error_result(exc)
        return {"status": "ok", "cleared": had_state}

    async def read_file(
        path: Path,
        tool_context: ToolContext,
        offset: Annotated[int, Field(ge=0, description="Lines to skip from the start.")] = 0,
        line_count: Annotated[
            int, Field(ge=0, description="Lines to return; 0 = as many as fit.")
        ] = 0,
    ) -> dict:
        """Read lines of a text file in /workspace, /tools or /skills (about {shown} characters
        at most; the reply says where to continue)."""
        try:
            read = await executor.read_text(
                key(tool_context), path, offset=offset, line_count=line_count or None
            )
        except ExecutorError as exc:
            return error_result(exc)
        content, cut = clip(read.text, output_limit_chars)
        response: dict[str, Any] = {"status": "ok", "path": path, "content": content}
        if cut or read.truncated or read.more:
            response["next_offset"] = read.next_offset
            response["note"] = (
                f"The file goes on: read further with offset={read.next_offset} and line_count."
            )
        return response

    async def write_file(
        path: Path,
        content: Annotated[str, Field(description="The complete text of the file.")],
        tool_context: ToolContext,
    ) -> dict:
        """Create or overwrite a text file in /workspace (parent folders are created)."""
        try:
            await executor.write_file(key(tool_context), path, content)
        except ExecutorError as exc:
            return error_result(exc)
        return {"status": "ok", "path": path, "bytes": len(content.encode("utf-8"))}

    async def list_files(
        tool_context: ToolContext,
        path: Annotated[
            str, Field(description="A directory in /workspace, /tools or /skills.")
        ] = "/workspace",
    ) -> dict:
        """List a directory in the sandbox: names, sizes (bytes) and modification times."""
        try:
            entries = await executor.list_files(key(tool_context), path)
        except ExecutorError as exc:
            return error_result(exc)
        listed = [
            {
                "name": e.name + ("/" if e.is_dir else ""),
                "size": e.size,
                "modified": datetime.fromtimestamp(e.modified, UTC).strftime("%Y-%m-%d %H:%M"),
            }
            for e in entries[:_LIST_SHOWN]
        ]
        response: dict[str, Any] = {"status": "ok", "path": path, "entries": listed}
        if len(entries) > _LIST_SHOWN:
            response["note"] = f"{len(entries) - _LIST_SHOWN} more entries not shown."
        return response

    async def list_tools() -> dict:
        """List the Python modules in /tools (signature and summary of each function). Read one
        with read_docstring, then import it in run_python: `from tools.example import greet`."""
        try:
            found = await executor.list_tools()
        except ExecutorError as exc:
            return error_result(exc)
        return {
            "status": "ok",
            "tools": [f"{t.module}.{t.signature}  # {t.summary}" for t in found],
        }

    async def read_docstring(
        module_path: Annotated[str, Field(description="Dotted module, e.g. 'tools.example'.")],
        function_name: Annotated[str, Field(description="A function in it, e.g. 'greet'.")],
    ) -> dict:
        """Read the full docstring of one function in /tools."""
        try:
            doc = await executor.read_docstring(module_path, function_name)
        except ExecutorError as exc:
            return error_result(exc)
        return {"status": "ok", "docstring": doc or "(no docstring)"}

    tools = [
        execute_bash,
        run_python,
        reset_python,
        read_file,
        write_file,
        read_docstring,
        list_files,
        list_tools,
    ]
    for tool in tools:  # clean descriptions, with the limits the model must know
        tool.__doc__ = inspect.cleandoc(tool.__doc__ or "").replace("{shown}", shown)
    return tools


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
