"""The bridge between sandbox code and the host, for real: calls from `tools.mcp` modules travel
over the resident runner's channel and back, with a transport-level double of code mode on the
host (the real code mode, with real MCP servers, has its own tier)."""

from __future__ import annotations

import asyncio
import shlex
import time

import pytest

from executor import ExecutionResult, OutputChunk
from executor.bridge import CallContext, CallOutcome, ToolTree

pytestmark = pytest.mark.docker

STUB = '''"""Echo tools (a test's stub)."""
from tools.mcp._runtime import call


def echo(**arguments):
    return call("echo-server", "echo", arguments)


def sleep(s):
    return call("echo-server", "sleep", {"s": s})


def big(n):
    return call("echo-server", "big", {"n": n})


def fail():
    return call("echo-server", "fail", {})
'''


class EchoTools:
    """A ToolBridge that answers from memory and remembers what it was asked."""

    def __init__(self) -> None:
        self.version = "1"
        self.calls: list[tuple[CallContext, str, str, dict]] = []
        self.cancelled = 0

    def tree(self, owner: str) -> ToolTree:
        init = f'"""Modules of {owner}."""\nfrom ._runtime import McpToolError\n'
        return ToolTree(self.version, {"__init__.py": init, "echo.py": STUB})

    async def call(self, ctx, server, tool, arguments):
        self.calls.append((ctx, server, tool, arguments))
        if tool == "sleep":
            try:
                await asyncio.sleep(arguments["s"])
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return CallOutcome(True, "slept")
        if tool == "big":
            return CallOutcome(True, "x" * arguments["n"])
        if tool == "fail":
            return CallOutcome(False, error="the server said no")
        return CallOutcome(True, {"owner": ctx.owner, "server": server, "arguments": arguments})


@pytest.fixture
def tools() -> EchoTools:
    return EchoTools()


@pytest.fixture
def bridged(make_executor, tools):
    return make_executor(tool_bridge=tools, tool_call_timeout_s=20)


async def test_a_call_from_run_python_reaches_the_host_and_comes_back(bridged, tools, user_id):
    result = await bridged.run_python(
        user_id, "from tools.mcp import echo\necho.echo(text='hi', n=[1, 2])"
    )
    assert result.exit_code == 0, result.stderr
    answer = eval(result.stdout)  # the dict's repr
    assert answer["arguments"] == {"text": "hi", "n": [1, 2]}
    assert answer["server"] == "echo-server"
    ctx = tools.calls[0][0]
    assert ctx.key.endswith(user_id) or user_id in ctx.key
    assert [(c.server, c.tool, c.ok) for c in result.tool_calls] == [("echo-server", "echo", True)]


async def test_a_script_run_from_bash_calls_too_and_sees_the_modules(bridged, user_id):
    await bridged.write_file(
        user_id, "script.py", "from tools.mcp import echo\nprint(echo.echo(x=1)['arguments'])\n"
    )
    result = await bridged.run(user_id, "ls /tools/mcp && python3 script.py")
    assert result.exit_code == 0, result.stderr
    assert "echo.py" in result.stdout
    assert "_runtime.py" in result.stdout
    assert "{'x': 1}" in result.stdout


async def test_eight_threads_call_at_once_and_all_answer(bridged, user_id):
    code = (
        "import concurrent.futures, time\n"
        "from tools.mcp import echo\n"
        "t = time.monotonic()\n"
        "with concurrent.futures.ThreadPoolExecutor(8) as pool:\n"
        "    answers = list(pool.map(lambda i: echo.sleep(0.5), range(8)))\n"
        "print(answers.count('slept'), round(time.monotonic() - t, 1))\n"
    )
    result = await bridged.run_python(user_id, code)
    count, seconds = result.stdout.split()
    assert count == "8", result.stderr
    assert float(seconds) < 2.5  # at once, not one after another
    assert len(result.tool_calls) == 8


async def test_output_keeps_streaming_while_a_call_is_pending(bridged, user_id):
    code = (
        "import sys\nfrom tools.mcp import echo\n"
        "print('before', flush=True)\necho.sleep(2)\nprint('after')\n"
    )
    seen: list[tuple[float, str]] = []
    started = time.monotonic()
    async for item in bridged.stream_bash(user_id, f"python3 -c {shlex.quote(code)}"):
        if isinstance(item, OutputChunk):
            seen.append((time.monotonic() - started, item.text))
        else:
            result: ExecutionResult = item
    assert result.exit_code == 0, result.stderr
    before = next(t for t, text in seen if "before" in text)
    after = next(t for t, text in seen if "after" in text)
    assert after - before > 1.5  # "before" arrived while the call was still waiting


async def test_a_tool_error_raises_mcp_tool_error_with_the_servers_words(bridged, user_id):
    code = (
        "from tools.mcp import echo, McpToolError\n"
        "try:\n    echo.fail()\nexcept McpToolError as e:\n    print('caught:', e, e.tool)\n"
    )
    result = await bridged.run_python(user_id, code)
    assert result.stdout.strip() == "caught: the server said no fail"
    assert [c.ok for c in result.tool_calls] == [False]
    assert result.tool_calls[0].error == "the server said no"


async def test_big_answers_cross_in_parts_and_too_big_ones_are_refused(bridged, user_id):
    code = (
        "from tools.mcp import echo, McpToolError\n"
        "print(len(echo.big(3_000_000)))\n"
        "try:\n    echo.big(17_000_000)\nexcept McpToolError as e:\n    print(e)\n"
    )
    result = await bridged.run_python(user_id, code, timeout=60)
    lines = result.stdout.splitlines()
    assert lines[0] == "3000000", result.stderr
    assert "over the 16,777,216-byte limit" in lines[1]


async def test_oversized_arguments_are_refused_before_reaching_the_host(bridged, tools, user_id):
    code = (
        "from tools.mcp import echo, McpToolError\n"
        "try:\n    echo.echo(blob='x' * 5_000_000)\nexcept McpToolError as e:\n    print(e)\n"
    )
    result = await bridged.run_python(user_id, code)
    assert "over the 4,194,304-byte limit" in result.stdout
    assert tools.calls == []


async def test_a_command_that_times_out_ends_its_outstanding_calls(bridged, tools, user_id):
    code = "from tools.mcp import echo\necho.sleep(60)\n"
    started = time.monotonic()
    result = await bridged.run_python(user_id, code, timeout=2)
    assert result.timed_out
    assert time.monotonic() - started < 10
    for _ in range(50):  # the cancellation runs on the bridge loop
        if tools.cancelled:
            break
        await asyncio.sleep(0.1)
    assert tools.cancelled == 1


async def test_malformed_messages_on_the_bridge_socket_get_an_answer_not_a_crash(
    bridged, tools, user_id
):
    code = (
        "import os, socket, struct\n"
        "def ask(raw):\n"
        "    s = socket.socket(socket.AF_UNIX); s.connect(os.environ['SANDBOX_BRIDGE'])\n"
        "    s.sendall(raw); data = b''\n"
        "    while True:\n"
        "        c = s.recv(65536)\n"
        "        if not c: break\n"
        "        data += c\n"
        "    return data[4:].decode()\n"
        "print(ask(struct.pack('>I', 8) + b'not json'))\n"
        'bad = b\'{"server": 1, "tool": [], "arguments": 3}\'.ljust(40)\n'
        "print(ask(struct.pack('>I', 40) + bad))\n"
        "print(ask(struct.pack('>I', 4_000_000_000)))\n"
    )
    result = await bridged.run_python(user_id, code)
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stderr
    assert all('"ok": false' in line for line in lines)
    assert "malformed" in lines[0]
    assert "malformed" in lines[1]
    assert "over the" in lines[2]
    assert tools.calls == []
    assert (await bridged.run(user_id, "echo still fine")).stdout == "still fine\n"


async def test_a_call_between_commands_is_turned_away_at_once(bridged, user_id):
    start_thread = (
        "import threading, time\nfrom tools.mcp import echo, McpToolError\nlate = []\n"
        "def later():\n    time.sleep(1)\n"
        "    try:\n        echo.echo()\n"
        "    except McpToolError as e:\n        late.append(str(e))\n"
        "threading.Thread(target=later, daemon=True).start()\n"
    )
    await bridged.run_python(user_id, start_thread)
    await asyncio.sleep(2)
    result = await bridged.run_python(user_id, "print(late)")
    assert "no command is running" in result.stdout


async def test_the_modules_follow_the_tree_and_survive_a_container_restart(bridged, tools, user_id):
    assert "echo.py" in (await bridged.run(user_id, "ls /tools/mcp")).stdout
    tools.version = "2"
    original = tools.tree
    tools.tree = lambda owner: ToolTree("2", {"__init__.py": "", "other.py": "X = 2\n"})
    listed = (await bridged.run(user_id, "ls /tools/mcp")).stdout.split()
    assert "other.py" in listed
    assert "echo.py" not in listed
    tools.tree = original  # version "2" again, but the container restarts: its tmpfs is empty
    await bridged.stop(user_id)
    again = await bridged.run(user_id, "ls /tools/mcp")
    assert "echo.py" in again.stdout.split()


async def test_without_the_runner_a_call_says_why_it_cannot_work(make_executor, tools, user_id):
    client = make_executor(tool_bridge=tools, use_runner=False)
    code = (
        "from tools.mcp import echo, McpToolError\n"
        "try:\n echo.echo()\nexcept McpToolError as e:\n print(e)\n"
    )
    await client.write_file(user_id, "c.py", code)
    result = await client.run(user_id, "python3 c.py")
    assert "resident runner" in result.stdout
    assert "EXECUTOR_USE_RUNNER=false" in result.stdout
    assert tools.calls == []


async def test_a_warm_pool_member_gets_its_users_modules_when_claimed(
    make_executor, tools, user_id
):
    """Pool members are made before their user is known: the modules arrive on the claim."""
    client = make_executor(tool_bridge=tools, pool_size=1)
    await client.start()
    for _ in range(100):  # the member is made and warmed in the background
        if client.pool_status().ready:
            break
        await asyncio.sleep(0.2)
    assert client.pool_status().ready
    result = await client.run_python(user_id, "from tools.mcp import echo\necho.echo(n=1)['owner']")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().strip("'") == tools.calls[0][0].owner
    assert client.pool_status().created >= 1
