"""Where discovery looks: the functions a user's sandbox code can import, per user.

`list_tools`, `read_docstring` and `search_tools` ask a `ToolIndex`, never the executor
directly, so more sources can join without touching the tools: `ToolsDirIndex` is the
project's `/tools` (parsed by the executor with `ast`, never imported on the host), and code
mode adds each user's `tools.mcp.<server>` modules as another index, combined with
`CombinedIndex`. Every method takes the owner (the app user), because what a user may import
is theirs alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from executor import DockerExecutionClient, ExecutorError, ToolFunction

from .search import SearchHit, order, rank

logger = logging.getLogger(__name__)


class ToolIndex(Protocol):
    """Functions sandbox code can import, as one user sees them."""

    async def list(self, owner: str) -> list[ToolFunction]:
        """Every function, with signature and docstring summary."""
        ...

    async def docstring(self, owner: str, module: str, function: str) -> str:
        """The full docstring of `function` in `module` ('' when it has none).

        Raises:
            ExecutorError: e.g. `SandboxFileNotFoundError` for an unknown module or function,
                `InvalidArgumentError` for a malformed name.
        """
        ...

    async def search(self, owner: str, query: str, limit: int) -> list[SearchHit]:
        """The best `limit` functions for the words of `query`, best first."""
        ...


class ToolsDirIndex:
    """The modules in `/tools`: the same for every user (the folder is mounted read-only)."""

    def __init__(self, executor: DockerExecutionClient) -> None:
        self._executor = executor

    async def list(self, owner: str) -> list[ToolFunction]:
        return await self._executor.list_tools()

    async def docstring(self, owner: str, module: str, function: str) -> str:
        return await self._executor.read_docstring(module, function)

    async def _doc(self, function: ToolFunction) -> str:
        try:
            return await self._executor.read_docstring(function.module, function.name)
        except ExecutorError as exc:  # changed since it was listed: rank it by its summary
            logger.info("no docstring for %s.%s: %s", function.module, function.name, exc)
            return ""

    async def search(self, owner: str, query: str, limit: int) -> list[SearchHit]:
        functions = await self.list(owner)
        docs = await asyncio.gather(*(self._doc(f) for f in functions))
        return rank(query, zip(functions, docs, strict=True), limit)


class CombinedIndex:
    """Several indexes as one, each serving a module namespace (e.g. "tools" and "tools.mcp").

    Listing and search merge all of them (search by score, ties by module and name). A
    docstring comes from the index with the longest namespace that holds the module; a module
    under none of them (such as "example" for "tools.example") goes to the first index.
    """

    def __init__(self, indexes: Mapping[str, ToolIndex]) -> None:
        if not indexes:
            raise ValueError("CombinedIndex needs at least one index")
        self._indexes = dict(indexes)

    def _for(self, module: str) -> ToolIndex:
        holding = [ns for ns in self._indexes if module == ns or module.startswith(ns + ".")]
        if not holding:
            return next(iter(self._indexes.values()))
        return self._indexes[max(holding, key=len)]

    async def list(self, owner: str) -> list[ToolFunction]:
        listed = await asyncio.gather(*(i.list(owner) for i in self._indexes.values()))
        return [function for functions in listed for function in functions]

    async def docstring(self, owner: str, module: str, function: str) -> str:
        return await self._for(module).docstring(owner, module, function)

    async def search(self, owner: str, query: str, limit: int) -> list[SearchHit]:
        found = await asyncio.gather(
            *(i.search(owner, query, limit) for i in self._indexes.values())
        )
        return order(hit for hits in found for hit in hits)[:limit]
