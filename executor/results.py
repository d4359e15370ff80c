"""What the executor hands back: plain, typed values that every layer reads by field.

Callers never parse message text: a timeout is `timed_out`, a memory kill `oom_killed`, a command
stopped by its caller `stopped`, cut output `stdout_dropped_bytes`/`stderr_dropped_bytes`, a read
that did not reach the end `FileRead.truncated` with `next_offset`. The words for people and
models (`notes`, and the bracketed lines appended to stderr) are made in `_wording.py`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ToolCallRecord:
    """One MCP tool call that a command's code made through code mode (`tools.mcp`)."""

    server: str
    tool: str
    duration_s: float
    ok: bool
    error: str = ""  # the server's or the host's words when not ok


@dataclass(frozen=True)
class EgressRecord:
    """One connection a command's processes asked the egress proxy for."""

    host: str
    port: int
    allowed: bool
    reason: str = ""  # why it was refused or ended early, in words
    bytes_up: int = 0  # sandbox -> peer
    bytes_down: int = 0  # peer -> sandbox
    duration_s: float = 0.0


@dataclass(frozen=True)
class ExecutionResult:
    """What a command did. A non-zero exit code is data, not an error.

    The exit code is 124 after a timeout and 137 when the command was killed (stopped by the
    caller, out of memory, flooding output, or its container stopped).
    """

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    duration_s: float = 0.0
    stdout_dropped_bytes: int = 0
    stderr_dropped_bytes: int = 0
    runner: bool = False  # ran through the resident runner (else a plain exec)
    python_state_lost: bool = False  # the Python interpreter's variables are gone
    oom_killed: bool = False  # the kernel killed a process: the sandbox ran out of memory
    stopped: bool = False  # the caller cancelled it (Stop, a dropped client)
    flooded: bool = False  # stopped for writing more than the flood limit
    sandbox_restarted: bool = False  # the container was restarted to stop it (/tmp cleared)
    notes: tuple[str, ...] = ()  # what happened besides the command, in words
    tool_calls: tuple[ToolCallRecord, ...] = ()  # MCP calls its code made (code mode)
    egress: tuple[EgressRecord, ...] = ()  # connections it asked for through the proxy

    @property
    def egress_refused(self) -> tuple[EgressRecord, ...]:
        return tuple(record for record in self.egress if not record.allowed)

    @property
    def output_truncated(self) -> bool:
        return bool(self.stdout_dropped_bytes or self.stderr_dropped_bytes)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not (self.timed_out or self.stopped)

    def as_tuple(self) -> tuple[int, str, str]:
        return self.exit_code, self.stdout, self.stderr


@dataclass(frozen=True)
class OutputChunk:
    """A piece of a running command's output (decoded; invalid UTF-8 becomes U+FFFD)."""

    stream: str  # "stdout" or "stderr"
    text: str


@dataclass(frozen=True)
class FileRead:
    """Some lines of a text file, and where to continue."""

    text: str
    offset: int  # the first line returned (0-based)
    next_offset: int  # the line to ask for next
    truncated: bool  # stopped at the byte limit inside the requested lines
    more: bool  # lines remain after what was returned


@dataclass(frozen=True)
class FileInfo:
    """One entry of a directory listing in the sandbox."""

    path: str
    name: str
    size: int
    modified: float  # seconds since the epoch
    is_dir: bool
    is_symlink: bool = False


@dataclass(frozen=True)
class SandboxInfo:
    """One session's sandbox as the executor sees it (for status pages and tests)."""

    key: str
    container_name: str
    volume: str
    live: bool  # its container runs (not stopped for being idle)
    runner_pid: int | None  # the resident runner's pid inside, when one runs
    last_used: float  # seconds since the epoch


@dataclass(frozen=True)
class PoolStatus:
    ready: int  # members waiting for a session
    target: int  # how many it is growing or shrinking to (recent demand, within the bounds)
    floor: int = 0
    ceiling: int = 0
    created: int = 0  # members made since start


@dataclass(frozen=True)
class Inventory:
    """Everything of this app on the engine, for `make doctor` and `make cleanup`."""

    engine: str  # e.g. "Docker 20.10.24 (API 1.41)"
    image: str  # "current", "stale" or "missing"
    sessions: int  # session containers (running or stopped)
    pool_members: int
    pool_members_running: int
    volumes: int
    quota_mode: str = "per-file"  # how the workspace size is enforced
    images: tuple[tuple[str, int], ...] = ()  # (tag, bytes): the sandbox image and its base
    runtimes: tuple[str, ...] = ()  # container runtimes offered (runsc = gVisor)
