"""What a tool's caller reads: the executor's typed outcomes as small dicts with notes in words.

One function per kind of outcome, used by both surfaces. They read typed fields only (never
stderr text): a timeout is `timed_out`, a memory kill `oom_killed`, cut output the dropped-byte
counts and the characters `clip` removed. Flags are copied only when true, so the model's
context stays small and the UI labels steps from them. A new typed fact on `ExecutionResult`
becomes one entry in `_FLAGS` and, if it needs words, one function in `_NOTES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from executor import ExecutionResult, FileInfo, FileRead, ToolFunction
from executor.text import clip

from .spec import Bounds

LISTED_ENTRIES = 500  # most directory entries in one list_files result

# Typed facts copied into the result (when true), in this order.
_FLAGS = ("timed_out", "oom_killed", "stopped", "python_state_lost")


def _ending_note(result: ExecutionResult, timeout: float, bounds: Bounds) -> str | None:
    """Why the command ended early, if it did (one reason: the first that applies)."""
    if result.timed_out:
        return (
            f"It timed out after {timeout:g} s and was killed with everything it started. "
            f"Make it faster, split it, or pass a larger timeout (max {bounds.max_timeout_s:g})."
        )
    if result.oom_killed:
        return (
            "A process was killed because the sandbox ran out of memory "
            f"({bounds.memory_bytes / 2**30:g} GiB). Process the data in chunks or use less "
            "memory."
        )
    if result.stopped:
        return "It was stopped before it finished."
    if result.flooded:
        return (
            "It was stopped for writing too much output. Write big output to a file and read "
            "parts of it with read_file."
        )
    if result.exit_code == 137:
        return "It was killed (SIGKILL)."
    return None


def _state_note(result: ExecutionResult, timeout: float, bounds: Bounds) -> str | None:
    if result.python_state_lost:
        return (
            "The Python interpreter was restarted: variables, imports and definitions from "
            "earlier run_python calls are gone; define them again."
        )
    return None


def _egress_note(result: ExecutionResult, timeout: float, bounds: Bounds) -> str | None:
    refused = result.egress_refused
    if not refused:
        return None
    targets = ", ".join(sorted({f"{r.host}:{r.port} ({r.reason})" for r in refused})[:5])
    return (
        f"The sandbox's network proxy refused: {targets}. Only the hosts the app's operator "
        "allows (EXECUTOR_EGRESS_ALLOW, on the host) can be reached; do not retry them."
    )


_NOTES: tuple[Callable[[ExecutionResult, float, Bounds], str | None], ...] = (
    _ending_note,
    _state_note,
    _egress_note,
)
SHOWN_CALLS = 20  # most MCP calls of one command listed in its result


def _calls(result: ExecutionResult) -> dict[str, Any]:
    """The MCP calls the command's code made (code mode), compactly: the UI lists them under
    the step, and a client sees which servers its code reached."""
    if not result.tool_calls:
        return {}
    listed = []
    for call in result.tool_calls[:SHOWN_CALLS]:
        item: dict[str, Any] = {
            "call": f"{call.server}.{call.tool}",
            "ok": call.ok,
            "duration_s": round(call.duration_s, 3),
        }
        if call.error:
            item["error"] = call.error[:200]
        listed.append(item)
    data: dict[str, Any] = {"mcp_calls": listed}
    if len(result.tool_calls) > SHOWN_CALLS:
        data["mcp_calls_not_listed"] = len(result.tool_calls) - SHOWN_CALLS
    return data


def _cut_note(stream: str, dropped: int, cut: int) -> str | None:
    if not (dropped or cut):
        return None
    parts = []
    if dropped:
        parts.append(f"{dropped:,} bytes beyond the sandbox's output cap")
    if cut:
        parts.append(f"{cut:,} characters from the middle")
    return (
        f"{stream} was shortened ({' and '.join(parts)} not shown). Redirect output to a file "
        "and read parts of it with read_file (offset, line_count)."
    )


def describe_execution(
    result: ExecutionResult, *, timeout: float, limit: int, bounds: Bounds
) -> dict[str, Any]:
    """A command's result: exit code, output clipped to `limit` characters per stream, the
    typed flags that are true, what was cut (`output_cut`) and a `note` in words."""
    stdout, stdout_cut = clip(result.stdout, limit)
    stderr, stderr_cut = clip(result.stderr, limit)
    data: dict[str, Any] = {
        "status": "ok",
        "exit_code": result.exit_code,
        "stdout": stdout,
        "stderr": stderr,
        "duration_s": round(result.duration_s, 3),
    }
    data.update({name: True for name in _FLAGS if getattr(result, name)})
    data.update(_calls(result))
    if result.egress_refused:
        data["egress_refused"] = sorted({f"{r.host}:{r.port}" for r in result.egress_refused})
    notes = [note(result, timeout, bounds) for note in _NOTES]
    cuts = {
        "stdout": (result.stdout_dropped_bytes, stdout_cut),
        "stderr": (result.stderr_dropped_bytes, stderr_cut),
    }
    notes += [_cut_note(stream, dropped, cut) for stream, (dropped, cut) in cuts.items()]
    if any(dropped or cut for dropped, cut in cuts.values()):
        data["output_cut"] = {
            "stdout_chars_cut": stdout_cut,
            "stderr_chars_cut": stderr_cut,
            "stdout_bytes_dropped": result.stdout_dropped_bytes,
            "stderr_bytes_dropped": result.stderr_dropped_bytes,
        }
    worded = [note for note in notes if note]
    if worded:
        data["note"] = " ".join(worded)
    return data


def describe_read(read: FileRead, *, path: str, limit: int) -> dict[str, Any]:
    """Lines of a text file, clipped to `limit` characters, and where to read on."""
    content, cut = clip(read.text, limit)
    data: dict[str, Any] = {"status": "ok", "path": path, "content": content}
    notes = []
    if cut:
        notes.append(
            f"{cut:,} characters were cut from the middle of these lines: read fewer lines at "
            "a time (offset, line_count) to see them."
        )
    if read.truncated or read.more:
        data["next_offset"] = read.next_offset
        notes.append(
            f"The file goes on: read further with offset={read.next_offset} and line_count."
        )
    if notes:
        data["note"] = " ".join(notes)
    return data


def _modified(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")


def describe_listing(entries: list[FileInfo], *, path: str) -> dict[str, Any]:
    """A directory listing: path, name (directories end in /), size and modification time."""
    listed = [
        {
            "path": e.path,
            "name": e.name + ("/" if e.is_dir else ""),
            "size": e.size,
            "modified": _modified(e.modified),
        }
        for e in entries[:LISTED_ENTRIES]
    ]
    data: dict[str, Any] = {"status": "ok", "path": path, "entries": listed}
    if len(entries) > LISTED_ENTRIES:
        data["note"] = f"{len(entries) - LISTED_ENTRIES} more entries not shown."
    return data


def tool_line(function: ToolFunction) -> str:
    """One function as a line: its signature and docstring summary."""
    return f"{function.signature}  # {function.summary}" if function.summary else function.signature


def describe_tools(functions: Iterable[ToolFunction]) -> dict[str, Any]:
    """Importable functions grouped by module, one line each (modules in the order found)."""
    modules: dict[str, list[str]] = {}
    for function in functions:
        modules.setdefault(function.module, []).append(tool_line(function))
    data: dict[str, Any] = {"status": "ok", "modules": modules}
    if not modules:
        data["note"] = "No tool modules found."
    return data


def describe_matches(query: str, functions: Iterable[ToolFunction]) -> dict[str, Any]:
    """Search results, best first: module, signature and summary of each."""
    matches = [
        {"module": f.module, "signature": f.signature, "summary": f.summary} for f in functions
    ]
    data: dict[str, Any] = {"status": "ok", "query": query, "matches": matches}
    if not matches:
        data["note"] = "No function matches those words; list_tools lists them all."
    return data
