"""The agent's function tools: host-side ADK tools that drive the calling session's sandbox.

Not to be confused with the top-level `tools/` folder, which is code that runs *inside* the
sandbox. Each tool reaches the container of the ADK session that called it (ToolContext: user id
and session id -> executor key), so two chats never share a container. Results are dicts; an
executor error comes back as `{"status": "error", "error": ..., "hint": ...}` so the model can
recover, never as an exception that ends the turn. Output handed to the model is capped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.adk.tools import ToolContext

from executor import (
    DockerExecutionClient,
    ExecutionResult,
    ExecutorError,
    FileTooLargeError,
    InvalidArgumentError,
    NotARegularFileError,
    PathNotAllowedError,
    QuotaExceededError,
    RateLimitedError,
    SandboxFileNotFoundError,
    chat_key,
)

from .live import LiveOutput

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


def sandbox_key(user_id: str, session_id: str) -> str:
    """The executor key of one chat: the UI computes the same to reach the same container."""
    return chat_key(user_id, session_id)


def clip(text: str, limit: int) -> tuple[str, int]:
    """Keep the head and tail of `text` within `limit` characters; also return how much was cut."""
    if len(text) <= limit:
        return text, 0
    head = limit * 2 // 3
    tail = limit - head
    cut = len(text) - head - tail
    return (
        f"{text[:head]}\n[... {cut:,} characters cut from the middle of this output ...]\n"
        f"{text[-tail:]}",
        cut,
    )


_HINTS: list[tuple[type[ExecutorError], str]] = [
    (SandboxFileNotFoundError, "Check the path with list_files; relative paths are in /workspace."),
    (
        PathNotAllowedError,
        "Only /workspace can be written; /tools and /skills are read-only. Use paths inside "
        "/workspace and do not follow symlinks out of it.",
    ),
    (NotARegularFileError, "That is a directory or special file; use list_files on directories."),
    (FileTooLargeError, "Work on the file in parts, or reduce the data written."),
    (QuotaExceededError, "Delete files you no longer need from /workspace, then retry."),
    (InvalidArgumentError, "Fix the argument as the error says and call the tool again."),
    (
        RateLimitedError,
        "A usage limit was reached: wait as the error says before retrying, and tell the user "
        "why there is a pause.",
    ),
]


def error_result(exc: Exception) -> dict[str, Any]:
    """An executor error as data the model can act on."""
    hint = next((h for cls, h in _HINTS if isinstance(exc, cls)), "Try again or another approach.")
    return {"status": "error", "error": str(exc), "hint": hint}


def make_tools(
    executor: DockerExecutionClient, output_limit_chars: int, live: LiveOutput | None = None
) -> list[Callable]:
    """The function tools, bound to `executor`. Their docstrings are what the model reads.

    With `live`, a running command's output is published as it comes (the UI shows it)."""
    max_timeout = executor.settings.max_timeout_s
    memory = executor.settings.memory_limit_bytes

    def key(tool_context: ToolContext) -> str:
        return sandbox_key(tool_context.user_id, tool_context.session.id)

    async def run_streamed(stream, tool_context: ToolContext, timeout: int) -> dict:
        """Consume an executor stream: publish output live, return the result as data."""
        started = time.monotonic()
        result: ExecutionResult | None = None
        try:
            async for item in stream:
                if isinstance(item, ExecutionResult):
                    result = item
                elif live is not None:
                    live.publish(
                        key(tool_context),
                        tool_context.function_call_id or "",
                        item.stream,
                        item.text,
                    )
        except ExecutorError as exc:
            return error_result(exc)
        assert result is not None
        return describe(result, timeout, time.monotonic() - started)

    def describe(result: ExecutionResult, timeout: int, duration: float) -> dict:
        stdout, cut_out = clip(result.stdout, output_limit_chars)
        stderr, cut_err = clip(result.stderr, output_limit_chars)
        truncated = bool(cut_out or cut_err or result.output_truncated)
        response: dict[str, Any] = {
            "status": "ok",
            "exit_code": result.exit_code,
            "stdout": stdout,
            "stderr": stderr,
            "duration_s": round(duration, 3),
        }
        # Typed outcome fields (only when true, to keep the model's context small): the UI
        # labels steps from these, never from the text.
        flags = {
            "timed_out": result.timed_out,
            "oom_killed": result.oom_killed,
            "stopped": result.stopped,
            "python_state_lost": result.python_state_lost,
            "output_truncated": truncated,
        }
        response.update({name: True for name, value in flags.items() if value})
        notes = []
        if result.timed_out:
            notes.append(
                f"It timed out after {timeout} s and was killed with everything it started. "
                f"Make it faster, split it, or pass a larger timeout (max {max_timeout:g})."
            )
        elif result.oom_killed:
            notes.append(
                f"A process was killed because the sandbox ran out of memory "
                f"({memory / 2**30:g} GiB). Process the data in chunks or use less memory."
            )
        elif result.stopped:
            notes.append("It was stopped before it finished (the user pressed Stop).")
        elif result.exit_code == 137:
            notes.append("It was killed (SIGKILL).")
        if result.python_state_lost:
            notes.append(
                "The Python interpreter was restarted: variables, imports and definitions from "
                "earlier run_python calls are gone; define them again."
            )
        if truncated:
            notes.append(
                "Output was shortened (see the markers in stdout/stderr). Redirect output to a "
                "file and use read_file with offset and line_count to see all of it."
            )
        if notes:
            response["note"] = " ".join(notes)
        return response

    async def execute_bash(command: str, tool_context: ToolContext, timeout: int = 60) -> dict:
        """Run a bash command in this chat's private Linux sandbox and return its output.

        The working directory is /workspace (your files persist there between calls). Python 3
        with numpy, pandas and matplotlib is installed; there is no network. Every process the
        command starts is killed when it returns, so start a server and use it in one command.
        stdout and stderr are each cut to about 20,000 characters for you: write large output to
        a file and read parts of it with read_file.

        Args:
            command: The bash command line(s) to run, e.g. "ls -la" or "python3 script.py".
            timeout: Seconds before the command is killed (exit code 124); at most 3600.
        """
        stream = executor.stream_bash(key(tool_context), command, timeout=timeout)
        return await run_streamed(stream, tool_context, timeout)

    async def run_python(code: str, tool_context: ToolContext, timeout: int = 60) -> dict:
        """Run Python code in this chat's persistent Python interpreter (like a notebook cell).

        Variables, imports and function definitions stay for the next run_python call; the
        value of a final expression is printed. numpy, pandas and matplotlib are installed and
        `from tools.example import greet` works; the working directory is /workspace. If the
        code times out or crashes, the interpreter restarts and its state is lost (you are told).

        Args:
            code: Python source to run, e.g. "import pandas as pd\ndf = pd.read_csv('a.csv')".
            timeout: Seconds before the code is stopped (exit code 124); at most 3600.
        """
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
        path: str, tool_context: ToolContext, offset: int = 0, line_count: int = 0
    ) -> dict:
        """Read lines of a text file in /workspace, /tools or /skills.

        Args:
            path: File path; relative paths are inside /workspace.
            offset: Number of lines to skip from the start (0 = from the first line).
            line_count: How many lines to return; 0 = as many as fit (about 20,000 characters).
        """
        try:
            read = await executor.read_text(
                key(tool_context), path, offset=offset, line_count=line_count or None
            )
        except ExecutorError as exc:
            return error_result(exc)
        content, cut = clip(read.text, output_limit_chars)
        response: dict[str, Any] = {
            "status": "ok",
            "path": path,
            "offset": offset,
            "content": content,
        }
        if cut or read.truncated or read.more:
            response["next_offset"] = read.next_offset
            response["note"] = (
                "The file is longer than what is shown: read further with offset="
                f"{read.next_offset} and line_count."
            )
        return response

    async def write_file(path: str, content: str, tool_context: ToolContext) -> dict:
        """Create or overwrite a text file in /workspace (parent folders are created).

        Args:
            path: File path; relative paths are inside /workspace.
            content: The complete text to write.
        """
        try:
            await executor.write_file(key(tool_context), path, content)
        except ExecutorError as exc:
            return error_result(exc)
        return {"status": "ok", "path": path, "bytes": len(content.encode("utf-8"))}

    async def list_files(tool_context: ToolContext, path: str = "/workspace") -> dict:
        """List a directory in the sandbox: names, sizes (bytes) and modification times.

        Args:
            path: Directory in /workspace, /tools or /skills; default /workspace.
        """
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
            for e in entries[:500]
        ]
        response: dict[str, Any] = {"status": "ok", "path": path, "entries": listed}
        if len(entries) > 500:
            response["note"] = f"{len(entries) - 500} more entries not shown."
        return response

    async def list_tools() -> dict:
        """List the Python tool modules in /tools: each function's signature and summary.

        Use read_docstring for a function's full documentation, then import and call it from
        Python run with execute_bash, e.g. `python3 -c "from tools.example import greet; ..."`.
        """
        try:
            found = await executor.list_tools()
        except ExecutorError as exc:
            return error_result(exc)
        return {
            "status": "ok",
            "tools": [f"{t.module}.{t.signature}  # {t.summary}" for t in found],
        }

    async def read_docstring(module_path: str, function_name: str) -> dict:
        """Read the full docstring of one function in /tools.

        Args:
            module_path: Dotted module path, e.g. "tools.example".
            function_name: Function name in that module, e.g. "greet".
        """
        try:
            doc = await executor.read_docstring(module_path, function_name)
        except ExecutorError as exc:
            return error_result(exc)
        return {"status": "ok", "docstring": doc or "(no docstring)"}

    return [
        execute_bash,
        run_python,
        reset_python,
        read_file,
        write_file,
        read_docstring,
        list_files,
        list_tools,
    ]


def on_tool_error(tool: Any, args: dict[str, Any], tool_context: ToolContext, error: Exception):
    """ADK callback: an unexpected exception in any tool reaches the model as data."""
    logger.error("tool %s failed", getattr(tool, "name", tool), exc_info=error)
    return {
        "status": "error",
        "error": f"{type(error).__name__}: {error}",
        "hint": "An internal error happened in the tool. Try again once, then tell the user.",
    }
