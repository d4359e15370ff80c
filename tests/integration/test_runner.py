"""The resident runner: fast path, live output, stateful Python, and every fallback."""

from __future__ import annotations

import time

import pytest

from executor import ExecutionResult, OutputChunk
from executor import runner as runner_module

pytestmark = pytest.mark.docker

FAKE_HEADER = "import os, struct, json, time\nH = struct.Struct('>BII')\n" + (
    "def send(k, r, p=b''):\n    os.write(1, H.pack(k, r, len(p)) + p)\n"
    "def request():\n"
    "    h = b''\n"
    "    while len(h) < 9:\n"
    "        h += os.read(0, 9 - len(h))\n"
    "    k, r, n = H.unpack(h)\n"
    "    while n > 0:\n"
    "        n -= len(os.read(0, n))\n"
    "    return r\n"
)
HELLO = "send(13, 0, json.dumps({'version': 2}).encode())\n"
FAKE_RUNNERS = {
    "floods": "import os\nwhile True:\n    os.write(1, b'x' * 65536)\n",
    "answers before taking the request": FAKE_HEADER
    + HELLO
    + "while True:\n    send(12, request(), b'{\"exit_code\": 0}')\n",
    "hangs": FAKE_HEADER + HELLO + "time.sleep(3600)\n",
}


async def test_commands_run_through_the_runner(executor, user_id):
    result = await executor.run(user_id, "echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.runner


async def test_output_streams_before_the_command_ends(executor, user_id):
    started = time.monotonic()
    seen: list[tuple[float, OutputChunk | ExecutionResult]] = []
    async for item in executor.stream_bash(user_id, "echo first; sleep 2; echo second"):
        seen.append((time.monotonic() - started, item))
    first_at = next(t for t, item in seen if isinstance(item, OutputChunk) and "first" in item.text)
    result_at, result = seen[-1]
    assert isinstance(result, ExecutionResult)
    assert result.stdout == "first\nsecond\n"
    assert first_at < 1.5 < result_at


async def test_stopping_a_stream_kills_the_command(executor, user_id):
    async for item in executor.stream_bash(user_id, "echo go; sleep 60", timeout=120):
        assert isinstance(item, OutputChunk)
        break  # the consumer goes away
    started = time.monotonic()
    _code, out, _ = await executor.execute_bash(user_id, "pgrep -c -u 1000 -x sleep || true")
    assert out.strip() == "0"
    assert time.monotonic() - started < 10


async def test_timeouts_kill_the_tree_through_the_runner(executor, user_id):
    result = await executor.run(
        user_id, "setsid sleep 300 & nohup sleep 301 & sleep 302", timeout=1
    )
    assert result.runner
    assert result.exit_code == 124
    assert "timed out after 1 s" in result.stderr
    out = (await executor.execute_bash(user_id, "pgrep -c -u 1000 -x sleep || true"))[1]
    assert out.strip() == "0"


async def test_python_state_persists_between_calls(executor, user_id):
    assert (await executor.run_python(user_id, "import math\nx = 41")).exit_code == 0
    result = await executor.run_python(user_id, "def double(v):\n    return 2 * v\nx + 1")
    assert (result.exit_code, result.stdout) == (0, "42\n")
    assert (await executor.run_python(user_id, "double(x), math.pi > 3")).stdout == "(82, True)\n"
    tools = await executor.run_python(user_id, "from tools.example import greet\ngreet('Ada')")
    assert tools.stdout == "'Hello, Ada!'\n"


async def test_python_errors_show_a_short_traceback_and_keep_state(executor, user_id):
    await executor.run_python(user_id, "y = 5")
    failed = await executor.run_python(user_id, "1 / 0")
    assert failed.exit_code == 1
    assert "ZeroDivisionError: division by zero" in failed.stderr
    assert "sandbox-kernel" not in failed.stderr  # only the user's own frames
    assert (await executor.run_python(user_id, "y")).stdout == "5\n"


async def test_python_timeout_restarts_the_interpreter_and_says_state_was_lost(executor, user_id):
    await executor.run_python(user_id, "z = 1")
    timed_out = await executor.run_python(user_id, "while True:\n    pass", timeout=1)
    assert timed_out.exit_code == 124
    assert timed_out.python_state_lost
    assert "variables, imports and definitions from earlier calls are gone" in timed_out.stderr
    after = await executor.run_python(user_id, "z")
    assert "NameError" in after.stderr
    assert (await executor.run_python(user_id, "2 + 2")).stdout == "4\n"


async def test_reset_python_forgets_everything(executor, user_id):
    await executor.run_python(user_id, "kept = 'yes'")
    assert await executor.reset_python(user_id)
    assert "NameError" in (await executor.run_python(user_id, "kept")).stderr


async def test_two_sessions_have_separate_interpreters(executor, user_id):
    await executor.run_python(user_id + "-a", "secret = 'a'")
    other = await executor.run_python(user_id + "-b", "secret")
    assert "NameError" in other.stderr


@pytest.mark.docker_only("a sandbox-user exec through Docker (Kubernetes: test_exec_websocket.py)")
async def test_runner_killed_between_calls_is_restarted(executor, user_id, docker_client):
    await executor.execute_bash(user_id, "true")
    info = await executor.sandbox_info(user_id)
    container = docker_client.containers.get(info.container_name)
    container.exec_run(["pkill", "-9", "-f", "sandbox-runner"], user="1000:1000")
    result = await executor.run(user_id, "echo fine")
    assert (result.exit_code, result.stdout) == (0, "fine\n")
    assert result.runner
    assert "it was restarted" in result.stderr


async def test_command_that_kills_the_runner_is_stopped_and_not_rerun(executor, user_id):
    result = await executor.run(
        user_id, "echo once >> count.txt; pkill -9 -f sandbox-runner; sleep 5"
    )
    assert result.exit_code == 137
    assert "not run again" in result.stderr
    after = await executor.run(user_id, "cat count.txt; pgrep -c -u 1000 -x sleep || true")
    assert after.stdout == "once\n0\n"
    assert after.runner


async def test_sandbox_code_cannot_open_the_runners_pipes(executor, user_id):
    _code, out, _err = await executor.execute_bash(
        user_id,
        "pid=$(pgrep -f -o sandbox-runner); ls /proc/$pid/fd 2>&1; cat /proc/$pid/environ 2>&1",
    )
    assert out.count("Permission denied") == 2


@pytest.mark.parametrize("behaviour", list(FAKE_RUNNERS))
async def test_a_misbehaving_runner_falls_back_to_a_plain_exec(
    executor, user_id, monkeypatch, behaviour
):
    monkeypatch.setattr(runner_module, "RUNNER_SOURCE", FAKE_RUNNERS[behaviour])
    started = time.monotonic()
    result = await executor.run(user_id, "echo real output")
    assert (result.exit_code, result.stdout) == (0, "real output\n")
    assert not result.runner
    assert "command runner" in result.stderr
    assert f"{executor.engine.name} exec" in result.stderr  # says which fallback ran
    assert time.monotonic() - started < 15


async def test_a_runner_that_lies_after_taking_a_command_is_stopped(executor, user_id, monkeypatch):
    lies = (
        FAKE_HEADER
        + HELLO
        + (
            "while True:\n    r = request()\n    send(14, r)\n"
            '    send(12, r, b\'{"exit_code": "zero"}\')\n'
        )
    )
    monkeypatch.setattr(runner_module, "RUNNER_SOURCE", lies)
    result = await executor.run(user_id, "echo hi")
    assert result.exit_code == 137
    assert "ended a request with nonsense" in result.stderr
    monkeypatch.undo()
    assert (await executor.execute_bash(user_id, "echo ok"))[:2] == (0, "ok\n")


async def test_plain_exec_path_still_works_and_python_says_state_is_not_kept(
    make_executor, user_id
):
    client = make_executor(use_runner=False)
    result = await client.run(user_id, "echo plain")
    assert (result.stdout, result.runner) == ("plain\n", False)
    python = await client.run_python(user_id, "print(6 * 7)")
    assert python.stdout == "42\n"
    assert "could not be kept" in python.stderr
