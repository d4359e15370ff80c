"""What one sandbox tool is, written once for both surfaces (the ADK agent and the MCP server).

A `ToolSpec` holds everything the caller of a tool sees or relies on: its name, description,
parameters (type, default, bounds, text), the executor call, and the shaping of what the call
returned into the dict the model or MCP client reads. The adapters (`agent/tools.py`,
`mcp_server/server.py`) add only what differs between them: how the caller and its sandbox are
found, live output, errors (data for ADK, tool errors for MCP), the wire budget.

A call knows who it is for (`ToolCall.owner`, the app user) and which sandbox it reaches
(`ToolCall.key`, the executor key), because discovery answers per user (code mode's
`tools.mcp.<server>` modules are each user's own).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from executor import DockerExecutionClient, OutputChunk
from settings import ExecutorSettings

if TYPE_CHECKING:
    from .index import ToolIndex

REQUIRED: Any = inspect.Parameter.empty  # the default of a parameter the caller must give

Args = dict[str, Any]


class Effect(Enum):
    """What a tool does to the sandbox (MCP clients read it as tool annotations)."""

    READ = "read"  # only reads (readOnlyHint)
    WRITE = "write"  # changes or forgets sandbox state (destructiveHint)
    RUN = "run"  # runs the caller's code


@dataclass(frozen=True)
class Param:
    """One parameter as the caller sees it in the schema; checked by `check_args`."""

    name: str
    type: type  # str, int, float or bool
    description: str
    default: Any = REQUIRED
    minimum: float | None = None
    maximum: float | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Bounds:
    """The limits a caller must know, from the executor's settings and the app's output cap."""

    output_chars: int  # most characters of stdout, stderr or file text in one result
    max_timeout_s: float
    memory_bytes: int

    @classmethod
    def of(cls, settings: ExecutorSettings, output_chars: int) -> Bounds:
        return cls(output_chars, settings.max_timeout_s, settings.memory_limit_bytes)


@dataclass(frozen=True)
class ToolCall:
    """Who a call is for and where it runs.

    `owner` is the app user (ADK: `tool_context.user_id`; MCP: the verified caller), `key` the
    executor key of the caller's sandbox ("" for tools that use none), `output` where a running
    command's output goes as it comes (None: nobody watches)."""

    owner: str
    key: str = ""
    output: Callable[[OutputChunk], None] | None = None


@dataclass(frozen=True)
class Backend:
    """What the tools' calls reach: the executor, and the index discovery looks in."""

    executor: DockerExecutionClient
    index: ToolIndex


Call = Callable[[Backend, ToolCall, Args], Awaitable[Any]]
Shape = Callable[[Any, Args, int], dict[str, Any]]  # (outcome, checked args, char limit)


@dataclass(frozen=True)
class ToolSpec:
    """One tool: the contract both surfaces expose, the executor call and the shaping.

    `call` returns an outcome (an `ExecutionResult`, a `FileRead`, ...) or raises an
    `ExecutorError`; `shape` turns the outcome into the caller's dict within a character limit
    (the MCP adapter lowers the limit until the result fits its wire budget)."""

    name: str
    description: str
    params: tuple[Param, ...]
    call: Call
    shape: Shape
    effect: Effect
    uses_sandbox: bool = True  # False: discovery tools (MCP then takes no sandbox_id)
    # A running command's output comes as it is written (MCP: progress notifications whose
    # total is the call's `timeout` argument, which such a tool must have).
    streams_output: bool = False

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)


@dataclass(frozen=True)
class Reply:
    """A call's outcome with its spec and arguments, shaped on demand at a character limit."""

    spec: ToolSpec
    outcome: Any
    args: Args

    def data(self, limit: int) -> dict[str, Any]:
        return self.spec.shape(self.outcome, self.args, limit)
