"""execute_bash against real Docker: results, timeouts and tree kills, output caps, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.docker

# Processes of the sandbox user other than this check itself, the runner and the Python kernel
# (and a Kubernetes pod's PID 1, which runs as the sandbox user there).
LEFTOVERS = (
    "ps -eo user=,args= | grep '^coderun' | grep -v -e 'ps -eo' -e grep -e 'bash -c' -e timeout"
    " -e sandbox-runner -e sandbox-kernel -e sandbox-init || true"
)


async def test_original_design_integration_check(make_executor):
    client = make_executor()
    assert await client.execute_bash("test_user", "echo 'Hello from container'") == (
        0,
        "Hello from container\n",
        "",
    )
    await client.write_file("test_user", "/workspace/test.txt", "Test content")
    assert await client.read_file("test_user", "/workspace/test.txt") == "Test content"
    assert "greeting message" in await client.read_docstring("tools.example", "greet")
    client.cleanup_all()
    assert (await client.inventory()).sessions == 0


async def test_exit_code_and_both_streams(executor, user_id):
    code, out, err = await executor.execute_bash(user_id, "echo out; echo err >&2; exit 3")
    assert (code, out, err) == (3, "out\n", "err\n")


async def test_commands_run_as_coderunner_in_workspace_with_tools_importable(executor, user_id):
    code, out, _ = await executor.execute_bash(
        user_id,
        "id -un; pwd; python3 -c 'from tools.example import greet; print(greet(\"Ada\"))'",
    )
    assert code == 0
    assert out.splitlines() == ["coderunner", "/workspace", "Hello, Ada!"]


async def test_data_libraries_work_offline(executor, user_id):
    script = (
        "import numpy, pandas, matplotlib.pyplot as plt; "
        "df = pandas.DataFrame({'a': numpy.arange(5)}); plt.plot(df.a); plt.savefig('p.png'); "
        "print(int(df.a.sum()))"
    )
    code, out, err = await executor.execute_bash(user_id, f'python3 -c "{script}" && test -s p.png')
    assert (code, out) == (0, "10\n"), err


async def test_timeout_kills_whole_tree_and_session_survives(executor, user_id):
    await executor.write_file(user_id, "keep.txt", "still here")
    command = (
        "sleep 300 & setsid sleep 301 & nohup sleep 302 >/dev/null 2>&1 & "
        "( trap '' TERM; exec sleep 303 ) & "
        "python3 -c 'import os,time\nif os.fork(): os._exit(0)\nos.setsid()\ntime.sleep(304)' & "
        "sleep 305"
    )
    started = time.monotonic()
    code, _, err = await executor.execute_bash(user_id, command, timeout=2)
    elapsed = time.monotonic() - started
    assert code == 124
    assert "timed out after 2 s" in err
    assert elapsed < 6
    code, out, _ = await executor.execute_bash(user_id, LEFTOVERS + "; cat keep.txt")
    assert (code, out) == (0, "still here")


async def test_process_ignoring_sigterm_is_killed_on_timeout(executor, user_id):
    code, _, err = await executor.execute_bash(
        user_id, "trap '' TERM INT; while :; do :; done", timeout=1.5
    )
    assert code == 124
    assert "timed out after 1.5 s" in err


async def test_background_process_returns_promptly_and_is_killed_after(executor, user_id):
    started = time.monotonic()
    code, out, _ = await executor.execute_bash(user_id, "sleep 100 & echo started")
    assert (code, out) == (0, "started\n")
    assert time.monotonic() - started < 3
    code, out, _ = await executor.execute_bash(user_id, LEFTOVERS)
    assert out == ""  # documented policy: nothing outlives the call that started it


@pytest.mark.docker_only("a per-container pids limit: pods have no such limit of their own")
async def test_fork_bomb_at_pids_limit_is_contained(make_executor, user_id):
    client = make_executor(pids_limit=64)
    code, _, err = await client.execute_bash(
        user_id, "bomb() { bomb | bomb & }; bomb; sleep 30", timeout=5
    )
    assert code == 124, err
    started = time.monotonic()
    code, out, _ = await client.execute_bash(user_id, "echo alive; ps -e --no-headers | wc -l")
    assert code == 0
    assert out.splitlines()[0] == "alive"
    assert int(out.splitlines()[1]) < 10
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), 10**9, True, "5"])
async def test_bad_timeout_is_a_clear_error(executor, bad):
    from executor import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="timeout"):
        await executor.execute_bash("never-created", "true", timeout=bad)


async def test_output_is_capped_with_a_marker(make_executor, user_id):
    client = make_executor(output_limit_bytes=100_000)
    code, out, err = await client.execute_bash(
        user_id,
        "head -c 5000000 /dev/zero | tr '\\0' a; head -c 300000 /dev/zero | tr '\\0' b >&2",
    )
    assert code == 0
    assert out.startswith("a" * 100_000)
    assert "4,900,000 more bytes of stdout were dropped" in out
    assert len(out) < 100_400
    assert err.startswith("b" * 100_000)
    assert "200,000 more bytes of stderr were dropped" in err


async def test_endless_output_is_stopped_without_waiting_for_timeout(make_executor, user_id):
    client = make_executor(output_limit_bytes=10_000, output_flood_bytes=20 << 20)
    started = time.monotonic()
    code, out, err = await client.execute_bash(user_id, "yes", timeout=60)
    assert code == 137
    assert "wrote more than 20,971,520 bytes" in err
    assert len(out) < 10_300
    assert time.monotonic() - started < 30


async def test_non_utf8_output_becomes_replacement_characters(executor, user_id):
    code, out, err = await executor.execute_bash(
        user_id, r"printf 'ok \xff\xfe end'; printf '\xc3' >&2"
    )
    assert code == 0
    assert out == "ok \ufffd\ufffd end"
    assert err == "\ufffd"


async def test_command_with_nul_byte_is_refused(executor):
    from executor import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="NUL"):
        await executor.execute_bash("never-created", "echo a\0b")


async def test_cancelled_call_kills_the_command(executor, user_id):
    await executor.execute_bash(user_id, "true")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(executor.execute_bash(user_id, "sleep 30"), timeout=1)
    started = time.monotonic()
    code, out, _ = await executor.execute_bash(user_id, LEFTOVERS)
    assert (code, out) == (0, "")
    assert time.monotonic() - started < 5


@pytest.mark.docker_only("twenty pod starts at once overwhelm the one-process API double")
async def test_twenty_sessions_run_at_once_without_serialising(executor):
    users = [f"parallel-{i}" for i in range(20)]
    await asyncio.gather(*(executor.execute_bash(u, "true") for u in users))  # create them
    started = time.monotonic()
    results = await asyncio.gather(*(executor.execute_bash(u, "sleep 1; echo done") for u in users))
    elapsed = time.monotonic() - started
    assert all(r == (0, "done\n", "") for r in results)
    assert elapsed < 6, f"20 x sleep 1 took {elapsed:.1f}s: calls are serialising"
