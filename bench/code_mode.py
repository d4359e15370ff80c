"""Code mode against direct tool calling: context bytes, tool definitions, call latency.

    .venv/bin/python bench/code_mode.py [--calls 100]

1. Context: "copy the meeting transcript (about 50 kB) from the document store into the CRM
   record", driven by a scripted model through the real ADK Runner. Direct tool calling: an ADK
   agent with `McpToolset` on the same two servers (docs, crm; stdio), so the transcript comes
   back to the model as a tool result and goes out again as the next call's argument. Code
   mode: the app's own agent, whose one `run_python` call does the copy inside the sandbox.
   Bytes sent to the model in total (every request's contents, instruction and tool
   declarations, as JSON) and what the model had to write, with cl100k token counts.
2. Tool definitions: the first request's size with a server of 5, 50 and 200 tools, direct
   (every tool declared) against code mode (the tools stay in the sandbox's modules).
3. Latency: sequential calls to mcp-server-time from `run_python` in a real sandbox, against the
   host calling the same server directly with the `mcp` client, in the same run.

Saves bench/results/code_mode.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("GOOGLE_API_USE_CLIENT_CERTIFICATE", "false")

from google.adk.agents import LlmAgent
from google.adk.models import BaseLlm, LlmRequest, LlmResponse
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.adk.tools.mcp_tool import McpToolset, StdioConnectionParams
from google.genai import types
from mcp import StdioServerParameters

from agent.agent import create_agent
from bench._common import pct, publish
from code_mode import McpHub, parse_servers
from executor import DockerExecutionClient
from settings import PROJECT_ROOT, load_settings

SAMPLES = PROJECT_ROOT / "samples" / "mcp_servers"
TIME_SERVER = PROJECT_ROOT / ".mcp-servers" / "py" / "bin" / "mcp-server-time"
QUIET = {"pool_size": 0, "max_executions_per_minute": 0, "max_concurrent_executions": 0}
COPY_CODE = (
    "from tools.mcp import docs, crm\n"
    "meeting = [d for d in docs.list_documents() if d['id'].startswith('meeting-')][0]\n"
    "text = docs.get_document(document_id=meeting['id'])['text']\n"
    "saved = crm.update_record(record_id='acme-001', notes=text)\n"
    "print(f\"copied {saved['notes_chars']:,} characters into acme-001\")\n"
)

Plan = Callable[[list[dict[str, Any]]], types.Part]  # tool responses so far -> next part


def tokens(text: str) -> int:
    """cl100k tokens (litellm bundles the tokenizer: no network)."""
    import litellm

    return litellm.token_counter(model="gpt-4", text=text)


def request_json(request: LlmRequest) -> str:
    body = {
        "contents": [c.model_dump(mode="json", exclude_none=True) for c in request.contents],
        "config": request.config.model_dump(mode="json", exclude_none=True)
        if request.config
        else {},
    }
    return json.dumps(body, ensure_ascii=False)


class Recorder(BaseLlm):
    """A scripted model that records every request it gets and what it writes."""

    model: str = "bench-recorder"
    plan: Any = None
    requests: list[str] = []  # noqa: RUF012 - pydantic copies defaults
    written: list[str] = []  # noqa: RUF012

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.requests.append(request_json(llm_request))
        responses = [
            p.function_response.response
            for c in llm_request.contents
            for p in c.parts or []
            if p.function_response
        ]
        part = self.plan(responses)
        self.written.append(json.dumps(part.model_dump(mode="json", exclude_none=True)))
        yield LlmResponse(content=types.Content(role="model", parts=[part]), turn_complete=True)


def _value(response: dict[str, Any]) -> Any:
    """What an MCP tool returned, as ADK's McpToolset hands it to the model."""
    structured = response.get("structuredContent", response.get("structured_content"))
    if structured is not None:
        value = structured
        return value.get("result", value) if set(value) == {"result"} else value
    texts = [c.get("text", "") for c in response.get("content", []) if c.get("type") == "text"]
    return json.loads(texts[0]) if texts else None


def direct_plan(responses: list[dict[str, Any]]) -> types.Part:
    def call(name: str, **args: Any) -> types.Part:
        return types.Part(function_call=types.FunctionCall(name=name, args=args))

    if not responses:
        return call("list_documents")
    last = _value(responses[-1])
    if len(responses) == 1:
        meeting = next(d for d in last if d["id"].startswith("meeting-"))
        return call("get_document", document_id=meeting["id"])
    if len(responses) == 2:
        return call("update_record", record_id="acme-001", notes=last["text"])
    return types.Part(text=f"Copied {last['notes_chars']:,} characters into acme-001.")


def code_plan(responses: list[dict[str, Any]]) -> types.Part:
    if not responses:
        call = types.FunctionCall(name="run_python", args={"code": COPY_CODE})
        return types.Part(function_call=call)
    return types.Part(text=responses[-1].get("stdout", "").strip() or "done")


async def run_turn(agent: LlmAgent, text: str) -> None:
    runner = Runner(app_name="bench", agent=agent, session_service=InMemorySessionService())
    session = await runner.session_service.create_session(app_name="bench", user_id="bench")
    message = types.Content(role="user", parts=[types.Part(text=text)])
    async for _ in runner.run_async(user_id="bench", session_id=session.id, new_message=message):
        pass
    await runner.close()


def stdio(script: Path, *args: str, env: dict[str, str] | None = None) -> McpToolset:
    params = StdioServerParameters(command=sys.executable, args=[str(script), *args], env=env)
    return McpToolset(connection_params=StdioConnectionParams(server_params=params, timeout=30))


def demo_servers(crm_file: Path, extra: dict[str, Any] | None = None) -> Any:
    servers = {
        "docs": {"command": sys.executable, "args": [str(SAMPLES / "docs.py")]},
        "crm": {
            "command": sys.executable,
            "args": [str(SAMPLES / "crm.py")],
            "env": {"CRM_DATA_FILE": str(crm_file)},
        },
        **(extra or {}),
    }
    return parse_servers(json.dumps({"mcpServers": servers}), Path("bench.json"), {}, ())


def summary(model: Recorder) -> dict[str, int]:
    sent = "".join(model.requests)
    written = "".join(model.written)
    return {
        "requests": len(model.requests),
        "bytes": len(sent.encode()),
        "tokens": tokens(sent),
        "written_bytes": len(written.encode()),
        "written_tokens": tokens(written),
        "first": len(model.requests[0].encode()),
    }


async def context(folder: Path) -> tuple[dict[str, int], dict[str, int]]:
    task = "Copy the Acme meeting transcript from the document store into CRM record acme-001."
    direct_model = Recorder(plan=direct_plan)
    env = {"CRM_DATA_FILE": str(folder / "crm-direct.json")}
    direct = LlmAgent(
        name="direct",
        model=direct_model,
        instruction="Use the document store and CRM tools to do what the user asks.",
        tools=[stdio(SAMPLES / "docs.py"), stdio(SAMPLES / "crm.py", env=env)],
    )
    await run_turn(direct, task)
    for toolset in direct.tools:
        await toolset.close()
    hub = McpHub(demo_servers(folder / "crm-code.json"), catalog_path=folder / "catalog.json")
    executor = DockerExecutionClient(
        app_label=f"mce-bench-{uuid.uuid4().hex[:6]}",
        tool_bridge=hub,
        state_dir=folder / "state",
        audit_log=folder / "audit.jsonl",
        **QUIET,
    )
    try:
        code_model = Recorder(plan=code_plan)
        agent = create_agent(load_settings({}), executor, model=code_model)
        await run_turn(agent, task)
    finally:
        executor.cleanup_all(remove_volumes=True)
        await executor.aclose()
    for name in ("crm-direct.json", "crm-code.json"):
        stored = json.loads((folder / name).read_text())
        assert len(stored["acme-001"]["notes"]) > 45_000, name  # both really copied it
    return summary(direct_model), summary(code_model)


WIDE = '''
import sys
from fastmcp import FastMCP
mcp = FastMCP("wide")


def make(i):
    def tool(record_id: str, limit: int = 10, verbose: bool = False) -> dict:
        """Look up one record of a collection in the warehouse and return its fields.

        Args:
            record_id: The record's id, as the warehouse writes it.
            limit: At most this many related rows.
            verbose: Include every field, not only the summary.
        """
        return {"collection": i, "id": record_id}

    tool.__doc__ = tool.__doc__.replace("a collection", f"collection number {i}")
    return tool


for i in range(int(sys.argv[1])):
    mcp.tool(make(i), name=f"lookup_collection_{i}")
mcp.run(show_banner=False)
'''


async def definitions(folder: Path, counts: list[int]) -> list[tuple[int, int, int]]:
    script = folder / "wide.py"
    script.write_text(WIDE)
    rows = []
    for count in counts:
        direct_model = Recorder(plan=lambda _r: types.Part(text="ok"))
        wide = stdio(script, str(count))
        agent = LlmAgent(name="d", model=direct_model, instruction="Help.", tools=[wide])
        await run_turn(agent, "hi")
        await wide.close()
        extra = {"wide": {"command": sys.executable, "args": [str(script), str(count)]}}
        catalog = folder / f"catalog-{count}.json"
        hub = McpHub(demo_servers(folder / "crm.json", extra), catalog_path=catalog)
        hub.tree("bench")  # listed, as a running app has them
        executor = DockerExecutionClient(
            app_label=f"mce-bench-{uuid.uuid4().hex[:6]}", tool_bridge=hub, state_dir=folder,
            audit_log=folder / "audit.jsonl", **QUIET,
        )  # fmt: skip
        code_model = Recorder(plan=lambda _r: types.Part(text="ok"))
        await run_turn(create_agent(load_settings({}), executor, model=code_model), "hi")
        await executor.aclose()
        rows.append((count, len(direct_model.requests[0]), len(code_model.requests[0])))
    return rows


async def latency(folder: Path, calls: int) -> tuple[list[float], list[float]]:
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    servers = {"time": {"command": str(TIME_SERVER)}}
    config = parse_servers(json.dumps({"mcpServers": servers}), Path("t.json"), {}, ())
    hub = McpHub(config, catalog_path=folder / "time.json")
    executor = DockerExecutionClient(
        app_label=f"mce-bench-{uuid.uuid4().hex[:6]}", tool_bridge=hub,
        state_dir=folder / "lat", audit_log=folder / "lat.jsonl", **QUIET,
    )  # fmt: skip
    code = (
        "import time, json\nfrom tools.mcp import time as clock\n"
        "clock.get_current_time(timezone='UTC')\nts = []\n"
        f"for _ in range({calls}):\n"
        "    t = time.perf_counter(); clock.get_current_time(timezone='UTC')\n"
        "    ts.append(time.perf_counter() - t)\n"
        "print(json.dumps(ts))\n"
    )
    try:
        result = await executor.run_python("bench", code, timeout=300)
        bridged = json.loads(result.stdout)
    finally:
        executor.cleanup_all(remove_volumes=True)
        await executor.aclose()
    direct = []
    server = StdioServerParameters(command=str(TIME_SERVER))
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.call_tool("get_current_time", {"timezone": "UTC"})
        for _ in range(calls):
            started = time.perf_counter()
            await session.call_tool("get_current_time", {"timezone": "UTC"})
            direct.append(time.perf_counter() - started)
    return bridged, direct


async def main(calls: int) -> str:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        direct, code = await context(folder)
        rows = await definitions(folder, [5, 50, 200])
        bridged, host = await latency(folder, calls)
    ratio = code["bytes"] / direct["bytes"]
    lines = [
        "# Code mode against direct tool calling",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} · real ADK Runner with a scripted model · real MCP "
        "servers over stdio · real Docker · request bytes = contents + instruction + tool "
        "declarations as JSON · tokens: cl100k",
        "",
        "## Copying a 50 kB transcript from docs into crm",
        "",
        "| | model requests | sent to the model | tokens sent | written by the model | "
        "tokens written |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in (("direct (McpToolset)", direct), ("code mode", code)):
        lines.append(
            f"| {name} | {m['requests']} | {m['bytes']:,} B | {m['tokens']:,} | "
            f"{m['written_bytes']:,} B | {m['written_tokens']:,} |"
        )
    lines += [
        "",
        f"Code mode sends **{ratio:.3f}x** the bytes of direct calling ({1 - ratio:.1%} fewer; "
        "goal <= 0.1x), and the model writes the code instead of re-sending the transcript. The "
        "code-mode agent is the app's own (its sandbox tools, skills and instruction in every "
        "request); the direct agent has only the five MCP tools and a one-line instruction.",
        "",
        "## First request with N tools configured",
        "",
        "| tools | direct | code mode |",
        "| ---: | ---: | ---: |",
    ]
    lines += [f"| {n} | {d:,} B | {c:,} B |" for n, d, c in rows]
    growth = rows[-1][2] - rows[0][2]
    lines += [
        "",
        f"From 5 to 200 tools, code mode's first request grows by {growth:,} B (goal <= 1 kB); "
        f"direct grows by {rows[-1][1] - rows[0][1]:,} B.",
        "",
        f"## {calls} sequential calls to mcp-server-time",
        "",
        "| path | p50 | p90 |",
        "| --- | ---: | ---: |",
        f"| from run_python, through the bridge | {pct(bridged, 0.5) * 1000:.2f} ms | "
        f"{pct(bridged, 0.9) * 1000:.2f} ms |",
        f"| the host with the `mcp` client directly | {pct(host, 0.5) * 1000:.2f} ms | "
        f"{pct(host, 0.9) * 1000:.2f} ms |",
        "",
        f"The bridge adds {(pct(bridged, 0.5) - pct(host, 0.5)) * 1000:+.2f} ms p50 per call "
        "(goal <= +3 ms).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100)
    publish(asyncio.run(main(parser.parse_args().calls)), "code_mode")
