"""What every MCP tool shares: who is calling, and how an executor error reads to the client."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Annotated

from fastmcp.exceptions import ToolError
from pydantic import Field

from executor import audit_tags
from executor.hints import HINT_SEPARATOR, hint_for

from .sandboxes import NoSuchSandbox, TooManySandboxes

# Parameters several tools take, as fastmcp reads them from the tools' annotations.
SandboxId = Annotated[
    str,
    Field(
        description="A sandbox id from create_sandbox or list_sandboxes (a web-UI chat's id "
        "works too); empty = your default sandbox."
    ),
]
WorkspacePath = Annotated[str, Field(description="File path; relative paths are in /workspace.")]

_HINTS: list[tuple[type[Exception], str]] = [  # the server's own; the executor's come after
    (NoSuchSandbox, "Use an id from list_sandboxes, or leave sandbox_id empty for the default."),
    (TooManySandboxes, "Close sandboxes you no longer need with close_sandbox."),
]


def tool_error(exc: Exception) -> ToolError:
    """An executor (or handle) error as a tool error: its message and what to do about it."""
    return ToolError(f"{exc}{HINT_SEPARATOR}{hint_for(exc, _HINTS)}")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the verified user (and token name), and over which transport."""

    user: str
    token_name: str | None
    transport: str  # "http" or "stdio"

    def tags(self) -> contextlib.AbstractContextManager[None]:
        return audit_tags(via="mcp", transport=self.transport, token=self.token_name)
