"""What the agent's tools hand the model: results as small dicts, errors as data with a hint.

Pure functions (no ADK, no executor calls): unit-tested on their own. Typed outcome fields
(`timed_out`, `oom_killed`, `stopped`, ...) are copied from the executor's result only when true,
so the model's context stays small and the UI can label steps from them, never from the text.
"""

from __future__ import annotations

from typing import Any

from executor import ExecutionResult
from executor.hints import hint_for
from executor.text import clip


def error_result(exc: Exception) -> dict[str, Any]:
    """An executor error as data the model can act on."""
    return {"status": "error", "error": str(exc), "hint": hint_for(exc)}


def describe_execution(
    result: ExecutionResult,
    *,
    timeout: float,
    duration_s: float,
    output_limit: int,
    max_timeout: float,
    memory_limit: int,
) -> dict[str, Any]:
    """A command's result for the model: exit code, clipped output, flags and a short note."""
    stdout, cut_out = clip(result.stdout, output_limit)
    stderr, cut_err = clip(result.stderr, output_limit)
    truncated = bool(cut_out or cut_err or result.output_truncated)
    response: dict[str, Any] = {
        "status": "ok",
        "exit_code": result.exit_code,
        "stdout": stdout,
        "stderr": stderr,
        "duration_s": round(duration_s, 3),
    }
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
            f"It timed out after {timeout:g} s and was killed with everything it started. "
            f"Make it faster, split it, or pass a larger timeout (max {max_timeout:g})."
        )
    elif result.oom_killed:
        notes.append(
            f"A process was killed because the sandbox ran out of memory "
            f"({memory_limit / 2**30:g} GiB). Process the data in chunks or use less memory."
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
