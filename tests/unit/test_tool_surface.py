"""The agent's tools and the MCP server's are one surface: same tools, texts, schemas, results.

The ADK side is read where the model would get it (the request a real Runner sends a scripted
model, and the function responses it gets back); the MCP side through a real MCP client
(fastmcp's in-memory transport to the real server). The executor is an injected fake that
hands back a given ExecutionResult, so the result shaping is compared, not Docker.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fastmcp
import pytest
from google.adk.agents import LlmAgent
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

from agent.tools import make_tools
from executor import ExecutionResult, FileInfo, OutputChunk, tools_index
from mcp_server import Sandboxes, SandboxStore, build_mcp
from settings import PROJECT_ROOT, ExecutorSettings
from tests.support.scripted_llm import ScriptedLlm
from tool_surface import TOOL_NAMES

LIMIT = 1000  # characters of output per stream in a result
MCP_ONLY = {"upload_file", "download_file", "create_sandbox", "list_sandboxes", "close_sandbox"}


class FakeExecutor:
    """The executor calls the tool surface makes, answering with what the test gives."""

    def __init__(self, result: ExecutionResult | None = None) -> None:
        self.settings = ExecutorSettings()
        self.result = result or ExecutionResult(0, "hi\n", "")
        self.keys: list[str] = []

    async def _stream(self, key: str) -> AsyncIterator[OutputChunk | ExecutionResult]:
        self.keys.append(key)
        yield OutputChunk("stdout", self.result.stdout[:10])
        yield self.result

    def stream_bash(self, key: str, command: str, timeout: float) -> AsyncIterator:
        return self._stream(key)

    def stream_python(self, key: str, code: str, timeout: float) -> AsyncIterator:
        return self._stream(key)

    async def list_files(self, key: str, path: str, *, recursive: bool = False) -> list[FileInfo]:
        return [FileInfo(f"/workspace/{n}", n, 3, 0.0, False) for n in ("a.txt", "b.txt")]

    async def list_tools(self) -> list:
        return tools_index.list_tools(PROJECT_ROOT / "tools")

    async def read_docstring(self, module_path: str, function_name: str) -> str:
        return tools_index.read_docstring(PROJECT_ROOT / "tools", module_path, function_name)


async def adk_turn(executor: FakeExecutor, calls: list[tuple[str, dict]]) -> tuple[Any, list]:
    """One turn of a real ADK Runner whose model makes `calls`: (first request, responses)."""
    llm = ScriptedLlm(steps=[calls])
    agent = LlmAgent(name="t", model=llm, tools=make_tools(executor, LIMIT))  # type: ignore[arg-type]
    sessions = InMemorySessionService()
    runner = Runner(app_name="t", agent=agent, session_service=sessions)
    session = await sessions.create_session(app_name="t", user_id="alice")
    message = types.Content(role="user", parts=[types.Part(text="go")])
    responses = []
    async for event in runner.run_async(
        user_id="alice", session_id=session.id, new_message=message
    ):
        for part in (event.content.parts if event.content else None) or []:
            if part.function_response:
                responses.append(dict(part.function_response.response or {}))
    return llm.seen_requests[0], responses


def mcp_server(executor: FakeExecutor, tmp_path: Path) -> fastmcp.FastMCP:
    sandboxes = Sandboxes(SandboxStore(tmp_path / "mcp.db"), executor)  # type: ignore[arg-type]
    return build_mcp(executor, None, sandboxes, local_user="alice", output_limit_chars=LIMIT)  # type: ignore[arg-type]


def plain_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema without the parts each framework adds on its own (titles, strictness)."""
    return {
        "properties": {
            name: {k: v for k, v in prop.items() if k != "title"}
            for name, prop in schema.get("properties", {}).items()
        },
        "required": sorted(schema.get("required", [])),
    }


async def test_both_surfaces_expose_the_same_tools_descriptions_and_schemas(tmp_path):
    executor = FakeExecutor()
    request, _ = await adk_turn(executor, [])
    declared = {
        d.name: d for tool in request.config.tools for d in tool.function_declarations or []
    }
    assert tuple(declared) == TOOL_NAMES

    async with fastmcp.Client(mcp_server(executor, tmp_path)) as client:
        listed = {t.name: t for t in await client.list_tools()}
    assert set(listed) - MCP_ONLY == set(TOOL_NAMES)

    for name in TOOL_NAMES:
        adk, mcp = declared[name], listed[name]
        assert adk.description == mcp.description, name
        adk_schema = plain_schema(adk.parameters_json_schema or {})
        mcp_schema = plain_schema(mcp.input_schema)
        sandbox_id = mcp_schema["properties"].pop("sandbox_id", None)
        assert adk_schema == mcp_schema, name
        uses_sandbox = name not in {"list_tools", "read_docstring", "search_tools"}
        assert (sandbox_id is not None) == uses_sandbox, name
    timeout = declared["execute_bash"].parameters_json_schema["properties"]["timeout"]
    assert (timeout["minimum"], timeout["maximum"]) == (1, 3600)
    assert "about 1,000 characters" in declared["execute_bash"].description


def result(**fields: Any) -> ExecutionResult:
    return ExecutionResult(**{"exit_code": 0, "stdout": "", "stderr": "", **fields})


CASES = {
    "timeout": (result(exit_code=124, timed_out=True, duration_s=5.0), "timed out after 5 s"),
    "oom": (result(exit_code=137, oom_killed=True), "ran out of memory (1 GiB)"),
    "stopped": (result(exit_code=137, stopped=True), "stopped before it finished"),
    "state lost": (
        result(exit_code=1, python_state_lost=True),
        "Python interpreter was restarted",
    ),
    "cut output": (
        result(stdout="x" * 5000, stdout_dropped_bytes=123_456),
        "stdout was shortened (123,456 bytes beyond the sandbox's output cap and 4,000 "
        "characters from the middle not shown)",
    ),
}


@pytest.mark.parametrize("case", CASES)
async def test_a_result_reads_the_same_through_both_surfaces(case, tmp_path):
    given, expected_note = CASES[case]
    executor = FakeExecutor(given)
    args = {"command": "job", "timeout": 5}
    _, (adk_reply,) = await adk_turn(executor, [("execute_bash", args)])
    async with fastmcp.Client(mcp_server(executor, tmp_path)) as client:
        called = await client.call_tool("execute_bash", args)
    mcp_reply = dict(called.structured_content)
    assert mcp_reply.pop("sandbox_id") == "default"
    assert adk_reply == mcp_reply
    assert expected_note in adk_reply["note"]
    assert json.loads(called.content[0].text) == called.structured_content


async def test_oom_is_never_guessed_from_stderr_text(tmp_path):
    """A kill whose stderr merely says "ran out of memory" is no memory kill: fields decide."""
    executor = FakeExecutor(result(exit_code=137, stderr="ran out of memory\n"))
    _, (reply,) = await adk_turn(executor, [("execute_bash", {"command": "job"})])
    assert "oom_killed" not in reply
    assert reply["note"] == "It was killed (SIGKILL)."


async def test_bad_arguments_get_the_same_words_on_both_surfaces(tmp_path):
    executor = FakeExecutor()
    calls = [("execute_bash", {"command": "x", "timeout": 0})]
    _, (adk_reply,) = await adk_turn(executor, calls)
    async with fastmcp.Client(mcp_server(executor, tmp_path)) as client:
        called = await client.call_tool("execute_bash", calls[0][1], raise_on_error=False)
    assert adk_reply["status"] == "error"
    assert adk_reply["error"] == "timeout must be between 1 and 3600, not 0"
    assert called.is_error
    assert called.content[0].text.startswith(adk_reply["error"] + "\nHint: Fix the argument")
    assert executor.keys == []  # nothing ran


async def test_discovery_answers_the_same_on_both_surfaces(tmp_path):
    executor = FakeExecutor()
    calls = [
        ("list_tools", {}),
        ("search_tools", {"query": "greeting", "limit": 1}),
        ("read_docstring", {"module_path": "tools.example", "function_name": "greet"}),
        ("list_files", {}),
    ]
    _, adk_replies = await adk_turn(executor, calls)
    async with fastmcp.Client(mcp_server(executor, tmp_path)) as client:
        mcp_replies = []
        for name, args in calls:
            data = dict((await client.call_tool(name, args)).structured_content)
            data.pop("sandbox_id", None)
            mcp_replies.append(data)
    assert adk_replies == mcp_replies
    listed, found, doc, files = adk_replies
    assert listed["modules"]["tools.example"][0] == (
        "greet(name: str) -> str  # Generate a greeting message."
    )
    assert [m["signature"] for m in found["matches"]] == ["greet(name: str) -> str"]
    assert "Who to greet." in doc["docstring"]
    assert [e["name"] for e in files["entries"]] == ["a.txt", "b.txt"]
