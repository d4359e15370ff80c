"""Discovery over the MCP catalog, the same three questions the `/tools` index answers:

- `list(owner)`: every function of the user's `tools.mcp.<module>`s, one summary line each;
- `docstring(owner, module, function)`: the full docstring, exactly what the stub file says
  (`function=""` gives the module's docstring);
- `search(owner, query, limit)`: the functions that best match some words, for servers with many
  tools, ranked by the tool surface's one ranking (names count most, then modules and
  summaries, then the rest of the docstring).

Answers come from the generated stubs (`McpHub.functions`), so they never disagree with the files
sandbox code sees.
"""

from __future__ import annotations

import ast
from typing import Any

from executor.errors import InvalidArgumentError, SandboxFileNotFoundError
from executor.tools_index import ToolFunction
from tool_surface.search import rank

from .stubs import FunctionStub


def _module_name(module: str) -> str:
    if not isinstance(module, str):
        raise InvalidArgumentError(f"invalid module path {module!r}: use e.g. 'tools.mcp.time'")
    for prefix in ("tools.mcp.", "mcp."):
        if module.startswith(prefix):
            return module[len(prefix) :]
    return module


class McpToolIndex:
    """`list` / `docstring` / `search` over one hub's stubs (see the module docstring)."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub

    def _functions(self, owner: str) -> dict[str, list[FunctionStub]]:
        return self.hub.functions(owner)

    def list(self, owner: str) -> list[ToolFunction]:
        """Every function of `owner`'s MCP modules, grouped by module."""
        return [function for function, _ in self.candidates(owner)]

    def docstring(self, owner: str, module: str, function: str) -> str:
        """The docstring of `function` in `tools.mcp.<module>` (the module's for "").

        Raises:
            SandboxFileNotFoundError: no such module or function for this user.
        """
        name = _module_name(module)
        tree = self.hub.tree(owner)
        if f"{name}.py" not in tree.files:
            known = ", ".join(f"tools.mcp.{m}" for m in self._functions(owner)) or "none"
            raise SandboxFileNotFoundError(
                f"no MCP module {module!r} for this user (configured: {known})", module
            )
        if not function:
            return ast.get_docstring(ast.parse(tree.files[f"{name}.py"])) or ""
        for stub in self._functions(owner).get(name, []):
            if function in {stub.name, stub.tool}:
                return stub.docstring
        raise SandboxFileNotFoundError(
            f"no function {function!r} in tools.mcp.{name}; list the module's functions first",
            f"tools.mcp.{name}.{function}",
        )

    def candidates(self, owner: str) -> list[tuple[ToolFunction, str]]:
        """Each function of `owner`'s modules with its full docstring (what search ranks)."""
        return [
            (ToolFunction(s.module, s.name, s.signature, s.summary), s.docstring)
            for stubs in self._functions(owner).values()
            for s in stubs
        ]

    def search(self, owner: str, query: str, limit: int = 10) -> list[ToolFunction]:
        """The functions best matching the words of `query`, best first (at most `limit`),
        ranked as every discovery tool ranks (`tool_surface.search.rank`)."""
        return [hit.function for hit in rank(query, self.candidates(owner), limit)]
