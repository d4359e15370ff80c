"""What the executor needs from code mode, and what it gives it (the seam between the two).

Code mode (the `code_mode` package, host side) knows the user's MCP servers; the executor knows
the sandboxes and carries bridged calls over each sandbox's resident runner. They meet here:

- `ToolBridge.tree(owner)`: the files of `/tools/mcp` a sandbox of `owner` should see (only that
  user's servers), as text. The executor installs them into the sandbox (a tmpfs at /tools/mcp)
  before the next command whenever their `version` changed, and adds the sandbox-side runtime
  (`tools/mcp/_runtime.py`, which generated stubs import: `from tools.mcp._runtime import call`).
- `ToolBridge.call(ctx, server, tool, arguments)`: one call that sandbox code made. It runs on
  the executor's bridge event loop (one thread, its own loop), must honour cancellation (a
  command that ends, times out or is stopped cancels its outstanding calls), and decides
  everything about the call: whether `ctx.owner` may use that server and tool (whatever the
  stub in the sandbox says), and what the result is. The executor caps argument and result
  sizes, applies the per-call timeout and writes the audit line.
- `close()`, when the bridge has one: the executor owns the bridge it was given and calls it
  when it shuts down (`aclose`), after its sandboxes' commands have ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class CallContext:
    """Who made a bridged call: the executor key of the sandbox and its parts."""

    key: str  # the executor key (chat_key(owner, session))
    owner: str  # the app user the sandbox belongs to
    session: str  # the chat or MCP handle within that user


@dataclass(frozen=True)
class ToolTree:
    """The generated part of /tools/mcp for one user: relative path -> file text."""

    version: str  # changes whenever any file changes (e.g. a content hash)
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CallOutcome:
    """A bridged call's answer. `value` is JSON-able (dict, list, str, ...); `error` is the
    message sandbox code sees in `tools.mcp.McpToolError` when `ok` is false."""

    ok: bool
    value: Any = None
    error: str = ""


class ToolBridge(Protocol):
    """Code mode as the executor sees it."""

    def tree(self, owner: str) -> ToolTree:
        """The /tools/mcp files for `owner`. Called from worker threads before commands: quick
        (cached); it may wait briefly for servers still being listed."""
        ...

    async def call(
        self, ctx: CallContext, server: str, tool: str, arguments: dict[str, Any]
    ) -> CallOutcome:
        """Make one call for sandbox code (on the bridge loop; cancellable)."""
        ...
