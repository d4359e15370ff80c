"""The sandbox tools, each defined once: what the model and MCP clients see, and what runs.

`define_tools(bounds)` returns the specs in the order both surfaces list them. Descriptions
name the limits the caller must know (from `Bounds`), and say "the sandbox" rather than "this
chat's" or "your default": which sandbox a call reaches is each adapter's business.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from executor import ExecutionResult, OutputChunk

from .search import query_words
from .shaping import (
    describe_execution,
    describe_listing,
    describe_matches,
    describe_read,
    describe_tools,
)
from .spec import Args, Backend, Bounds, Effect, Param, ToolCall, ToolSpec

TOOL_NAMES = (
    "execute_bash",
    "run_python",
    "reset_python",
    "read_file",
    "write_file",
    "list_files",
    "list_tools",
    "read_docstring",
    "search_tools",
)
DEFAULT_TIMEOUT_S = 60
MAX_SEARCH_RESULTS = 50


async def _result_of(
    stream: AsyncIterator[OutputChunk | ExecutionResult], call: ToolCall
) -> ExecutionResult:
    """Read an executor stream to its result, passing output on. Leaving early (a cancelled
    call) closes the stream, and the executor then kills the command."""
    result: ExecutionResult | None = None
    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        async for item in stream:
            if isinstance(item, ExecutionResult):
                result = item
            elif call.output is not None:
                call.output(item)
    if result is None:
        raise RuntimeError("the executor's stream ended without a result")
    return result


async def _execute_bash(b: Backend, call: ToolCall, args: Args) -> ExecutionResult:
    stream = b.executor.stream_bash(call.key, args["command"], timeout=args["timeout"])
    return await _result_of(stream, call)


async def _run_python(b: Backend, call: ToolCall, args: Args) -> ExecutionResult:
    stream = b.executor.stream_python(call.key, args["code"], timeout=args["timeout"])
    return await _result_of(stream, call)


async def _reset_python(b: Backend, call: ToolCall, args: Args) -> bool:
    return await b.executor.reset_python(call.key)


async def _read_file(b: Backend, call: ToolCall, args: Args) -> Any:
    line_count = args["line_count"] or None
    return await b.executor.read_text(
        call.key, args["path"], offset=args["offset"], line_count=line_count
    )


async def _write_file(b: Backend, call: ToolCall, args: Args) -> int:
    await b.executor.write_file(call.key, args["path"], args["content"])
    return len(args["content"].encode("utf-8", "surrogatepass"))


async def _list_files(b: Backend, call: ToolCall, args: Args) -> Any:
    return await b.executor.list_files(call.key, args["path"], recursive=args["recursive"])


async def _list_tools(b: Backend, call: ToolCall, args: Args) -> Any:
    return await b.index.list(call.owner)


async def _read_docstring(b: Backend, call: ToolCall, args: Args) -> str:
    return await b.index.docstring(call.owner, args["module_path"], args["function_name"])


async def _search_tools(b: Backend, call: ToolCall, args: Args) -> Any:
    query_words(args["query"])  # a query without words is refused here, for every index
    hits = await b.index.search(call.owner, args["query"], args["limit"])
    return [hit.function for hit in hits]


def define_tools(bounds: Bounds) -> tuple[ToolSpec, ...]:
    """The nine sandbox tools under `bounds`."""
    shown = f"{bounds.output_chars:,}"
    timeout = Param(
        "timeout",
        float,
        "Seconds before it is killed (exit code 124).",
        default=DEFAULT_TIMEOUT_S,
        minimum=1,
        maximum=bounds.max_timeout_s,
    )
    file_path = Param("path", str, "A file path; relative paths are inside /workspace.")

    def execution(result: ExecutionResult, args: Args, limit: int) -> dict[str, Any]:
        return describe_execution(result, timeout=args["timeout"], limit=limit, bounds=bounds)

    return (
        ToolSpec(
            name="execute_bash",
            description=(
                "Run bash in a private Linux sandbox (cwd /workspace, kept between calls; "
                "Python 3 with numpy, pandas, matplotlib; no network). Every process the "
                f"command starts is killed when it returns. stdout and stderr are each cut to "
                f"about {shown} characters: write big output to a file and read parts with "
                "read_file."
            ),
            params=(Param("command", str, "Bash command line(s), e.g. 'ls -la'."), timeout),
            call=_execute_bash,
            shape=execution,
            effect=Effect.RUN,
            streams_output=True,
        ),
        ToolSpec(
            name="run_python",
            description=(
                "Run Python in the sandbox's persistent interpreter: variables, imports and "
                "definitions stay for the next call, and a final expression's value is "
                "printed. numpy, pandas and matplotlib are installed (plt.show() saves the "
                "figure in /workspace/figures); cwd is /workspace. A timeout or crash restarts "
                "the interpreter and says its state is lost."
            ),
            params=(Param("code", str, "Python source, like a notebook cell."), timeout),
            call=_run_python,
            shape=execution,
            effect=Effect.RUN,
            streams_output=True,
        ),
        ToolSpec(
            name="reset_python",
            description=(
                "Clear the sandbox's Python interpreter: forget all variables, imports and "
                "definitions."
            ),
            params=(),
            call=_reset_python,
            shape=lambda had_state, args, limit: {"status": "ok", "cleared": had_state},
            effect=Effect.WRITE,
        ),
        ToolSpec(
            name="read_file",
            description=(
                f"Read lines of a text file in /workspace, /tools or /skills (about {shown} "
                "characters at most; the reply says where to continue)."
            ),
            params=(
                file_path,
                Param("offset", int, "Lines to skip from the start.", default=0, minimum=0),
                Param(
                    "line_count", int, "Lines to return; 0 = as many as fit.", default=0, minimum=0
                ),
            ),
            call=_read_file,
            shape=lambda read, args, limit: describe_read(read, path=args["path"], limit=limit),
            effect=Effect.READ,
        ),
        ToolSpec(
            name="write_file",
            description=(
                "Create or overwrite a text file in /workspace (parent folders are created)."
            ),
            params=(file_path, Param("content", str, "The complete text of the file.")),
            call=_write_file,
            shape=lambda size, args, limit: {"status": "ok", "path": args["path"], "bytes": size},
            effect=Effect.WRITE,
        ),
        ToolSpec(
            name="list_files",
            description=(
                "List a directory in the sandbox: names, sizes (bytes) and modification times."
            ),
            params=(
                Param(
                    "path",
                    str,
                    "A directory in /workspace, /tools or /skills.",
                    default="/workspace",
                ),
                Param("recursive", bool, "Include subdirectories' entries.", default=False),
            ),
            call=_list_files,
            shape=lambda entries, args, limit: describe_listing(entries, path=args["path"]),
            effect=Effect.READ,
        ),
        ToolSpec(
            name="list_tools",
            description=(
                "List the Python functions in /tools by module (signature and summary of "
                "each). Read one with read_docstring, then import it in run_python: "
                "`from tools.example import greet`."
            ),
            params=(),
            call=_list_tools,
            shape=lambda functions, args, limit: describe_tools(functions),
            effect=Effect.READ,
            uses_sandbox=False,
        ),
        ToolSpec(
            name="read_docstring",
            description="Read the full docstring of one function in /tools.",
            params=(
                Param("module_path", str, "Dotted module, e.g. 'tools.example'."),
                Param("function_name", str, "A function in it, e.g. 'greet'."),
            ),
            call=_read_docstring,
            shape=lambda doc, args, limit: {"status": "ok", "docstring": doc or "(no docstring)"},
            effect=Effect.READ,
            uses_sandbox=False,
        ),
        ToolSpec(
            name="search_tools",
            description=(
                "Find functions in /tools by words in their name, module or docstring, best first."
            ),
            params=(
                Param("query", str, "Words to look for, e.g. 'csv summary'."),
                Param(
                    "limit",
                    int,
                    "Most matches to return.",
                    default=10,
                    minimum=1,
                    maximum=MAX_SEARCH_RESULTS,
                ),
            ),
            call=_search_tools,
            shape=lambda functions, args, limit: describe_matches(args["query"], functions),
            effect=Effect.READ,
            uses_sandbox=False,
        ),
    )
