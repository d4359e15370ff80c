"""ToolSurface: the sandbox tools of one executor, ready for an adapter to expose.

An adapter (ADK function tools, MCP tools) walks `surface.specs`, makes one function per spec
with `tool_function`, finds the caller and its sandbox its own way, and calls `surface.run`,
which checks the arguments and makes the executor call. The `Reply` it gets back is shaped at
whatever character limit the adapter needs.
"""

from __future__ import annotations

from executor import DockerExecutionClient

from .definitions import define_tools
from .index import ToolIndex, ToolsDirIndex
from .params import check_args
from .spec import Args, Backend, Bounds, Reply, ToolCall, ToolSpec


class ToolSurface:
    """The tool specs under the executor's limits, and one way to run them.

    Args:
        executor: Where the tools run.
        output_limit_chars: Most characters of stdout, stderr or file text in one result.
        index: Where discovery looks (default: the executor's /tools).
    """

    def __init__(
        self,
        executor: DockerExecutionClient,
        output_limit_chars: int,
        index: ToolIndex | None = None,
    ) -> None:
        self.bounds = Bounds.of(executor.settings, output_limit_chars)
        self.backend = Backend(executor, index or ToolsDirIndex(executor))
        self.specs = define_tools(self.bounds)

    def check(self, spec: ToolSpec, args: Args) -> Args:
        """`args` checked against `spec` (InvalidArgumentError in words), defaults filled."""
        return check_args(spec, args)

    async def run(self, spec: ToolSpec, call: ToolCall, args: Args) -> Reply:
        """Check the arguments and make the call. Raises `ExecutorError` (the adapters turn it
        into data or a tool error)."""
        checked = check_args(spec, args)
        return Reply(spec, await spec.call(self.backend, call, checked), checked)
