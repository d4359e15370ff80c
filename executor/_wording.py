"""From what happened to a typed result with words: pure functions, no I/O.

`Outcome` is what either path (the runner or a plain exec) observed; `Notes` collects the
notices an operation gathered on the way (a runner restarted, the sandbox restarted, ...).
`build_result` turns both into the public `ExecutionResult`: the fields say what happened, and
the same facts are appended to stderr in brackets, for models and for the tuple API.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from ._exec import StreamEnd
from .results import EgressRecord, ExecutionResult, ToolCallRecord

TIMEOUT_EXIT_CODE = 124
KILLED_EXIT_CODE = 137


class Notice(Enum):
    RUNNER_RESTARTED = (
        "the command runner had stopped (or said something unasked); it was restarted"
    )
    RUNNER_FAILED = "the command runner {reason}; it restarts on the next call"
    RUNNER_OFF = "the command runner {reason}; it is off for this session after repeated failures"
    RUNNER_NOT_STARTED = "the command runner could not start ({reason}); used {exec} instead"
    PLAIN_EXEC = "ran with {exec} instead"
    SANDBOX_RESTARTED = (
        "the sandbox was restarted to stop the command; files in /workspace are kept, "
        "/tmp was cleared"
    )
    CONTAINER_STOPPED = (
        "the sandbox container was stopped while the command ran; it starts again on the next "
        "call and /workspace is kept"
    )
    NOT_RERUN = "the command may have run in part; it was not run again"
    PYTHON_LOST_EARLIER = (
        "Python state was lost earlier ({why}); variables, imports and definitions from before "
        "are gone"
    )
    PYTHON_ONE_OFF = (
        "the Python state could not be kept: the command runner is unavailable, so this ran as "
        "a one-off `python3 -c` with {exec}"
    )
    TOOLS_NOT_INSTALLED = "the MCP tool modules could not be put in /tools/mcp ({reason})"
    EGRESS_REFUSED = (
        "the sandbox's proxy refused {target}: {reason}; the hosts sandboxes may reach are set "
        "by EXECUTOR_EGRESS_ALLOW"
    )
    PYTHON_RESTARTED = (
        "the Python interpreter was restarted because {why}: variables, imports and definitions "
        "from earlier calls are gone"
    )


class Notes:
    """The notices of one operation, in order; each worded once."""

    def __init__(self, exec_word: str = "docker exec") -> None:
        self.exec_word = exec_word
        self._items: list[tuple[Notice, dict[str, Any]]] = []

    def add(self, notice: Notice, **params: Any) -> None:
        self._items.append((notice, params))

    def first(self, notice: Notice, **params: Any) -> None:
        self._items.insert(0, (notice, params))

    def __contains__(self, notice: Notice) -> bool:
        return any(n is notice for n, _ in self._items)

    def texts(self) -> tuple[str, ...]:
        return tuple(n.value.format(exec=self.exec_word, **p) for n, p in self._items)


@dataclass
class Outcome:
    """What one run observed, before any wording."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    ended: StreamEnd = StreamEnd.EOF
    duration_s: float = 0.0
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    runner: bool = False
    oom: bool = False
    python_lost: bool = False
    python_lost_reason: str = ""  # the runner's own words, when it stopped the kernel itself
    python_lost_before: str = ""  # the kernel was stopped between Python requests: why
    sandbox_restarted: bool = False
    tool_calls: tuple[ToolCallRecord, ...] = ()
    egress: tuple[EgressRecord, ...] = ()


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}".replace(".0 ", " ")
        n /= 1024
    return str(n)


def drop_marker(stream: str, dropped: int, limit: int) -> str:
    return (
        f"\n[... {dropped:,} more bytes of {stream} were dropped: output is limited to "
        f"{limit:,} bytes per stream; write big output to a file and read parts of it ...]"
    )


def build_result(
    outcome: Outcome,
    notes: Notes,
    *,
    timeout_s: float,
    output_limit: int,
    flood_limit: int,
    memory_limit: int,
) -> ExecutionResult:
    """The public result: fields for programs, bracketed lines on stderr for people."""
    stdout = outcome.stdout.decode("utf-8", "replace")
    stderr = outcome.stderr.decode("utf-8", "replace")
    if outcome.stdout_dropped:
        stdout += drop_marker("stdout", outcome.stdout_dropped, output_limit)
    if outcome.stderr_dropped:
        stderr += drop_marker("stderr", outcome.stderr_dropped, output_limit)
    exit_code = outcome.exit_code
    timed_out = outcome.ended is StreamEnd.DEADLINE
    stopped = outcome.ended is StreamEnd.CANCELLED
    flooded = outcome.ended is StreamEnd.FLOOD
    tail = []
    if timed_out:
        exit_code = TIMEOUT_EXIT_CODE
        tail.append(
            f"[command timed out after {timeout_s:g} s; it and every process it started "
            "were killed]"
        )
    elif stopped:
        exit_code = KILLED_EXIT_CODE
        tail.append("[command cancelled; it and every process it started were killed]")
    elif flooded:
        exit_code = KILLED_EXIT_CODE
        tail.append(f"[command stopped: it wrote more than {flood_limit:,} bytes of output]")
    if outcome.oom:
        tail.append(
            "[sandbox: a process was killed: the sandbox ran out of memory (limit "
            f"{human_bytes(memory_limit)})]"
        )
    for record in outcome.egress:
        if not record.allowed:
            notes.add(
                Notice.EGRESS_REFUSED, target=f"{record.host}:{record.port}", reason=record.reason
            )
    worded = notes.texts()
    tail += [f"[{text}]" for text in worded]
    if tail:
        stderr += ("\n" if stderr and not stderr.endswith("\n") else "") + "\n".join(tail)
    return ExecutionResult(
        exit_code=exit_code,
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out,
        duration_s=outcome.duration_s,
        stdout_dropped_bytes=outcome.stdout_dropped,
        stderr_dropped_bytes=outcome.stderr_dropped,
        runner=outcome.runner,
        python_state_lost=outcome.python_lost,
        oom_killed=outcome.oom,
        stopped=stopped,
        flooded=flooded,
        sandbox_restarted=outcome.sandbox_restarted or Notice.SANDBOX_RESTARTED in notes,
        notes=worded,
        tool_calls=outcome.tool_calls,
        egress=outcome.egress,
    )


def python_lost_reason(outcome: Outcome) -> str:
    if outcome.python_lost_reason:
        return outcome.python_lost_reason
    if outcome.ended is StreamEnd.DEADLINE:
        return "it timed out"
    if outcome.ended is StreamEnd.CANCELLED or outcome.exit_code == KILLED_EXIT_CODE:
        return "it was stopped"
    return "it crashed"
