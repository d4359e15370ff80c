"""Processes started from Python are killed and reaped when the call ends, like bash's: no
zombie piles up, and a session at its pids limit recovers by itself on the next call."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.docker

ZOMBIES = "ps -eo stat= | grep -c '^Z' || true"
MINE = "pgrep -c -u 1000 -x sleep || true"


async def counts(executor, user_id) -> tuple[int, int]:
    code, out, err = await executor.execute_bash(user_id, f"{ZOMBIES}; {MINE}")
    assert code == 0, err
    zombies, sleeping = out.split()
    return int(zombies), int(sleeping)


async def test_popen_children_are_killed_and_reaped_after_the_call(executor, user_id):
    result = await executor.run_python(
        user_id,
        "import subprocess\nprocs = [subprocess.Popen(['sleep', '100']) for _ in range(20)]\n"
        "len(procs)",
    )
    assert result.stdout == "20\n"
    assert await counts(executor, user_id) == (0, 0)
    again = await executor.run_python(user_id, "procs[0].poll() is not None")  # state kept
    assert again.stdout == "True\n", again.stderr
    assert not again.python_state_lost


@pytest.mark.docker_only("a per-container pids limit: pods have no such limit of their own")
async def test_forking_to_the_pids_limit_leaves_no_zombies_and_bash_still_runs(executor, user_id):
    code = (
        "import os\nn = 0\nwhile True:\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        os._exit(0)\n"
        "    n += 1\nn > 100"
    )
    result = await executor.run_python(user_id, code, timeout=60)
    assert result.stdout == "True\n", result.stderr
    for _ in range(3):
        assert (await executor.execute_bash(user_id, "echo ok"))[:2] == (0, "ok\n")
    assert await counts(executor, user_id) == (0, 0)


async def test_forked_children_that_sleep_are_killed_too(executor, user_id):
    pythons = "ps -u 1000 -o comm= | grep -c python"
    await executor.run_python(user_id, "0")  # the kernel runs
    before = (await executor.execute_bash(user_id, pythons))[1]  # runner, kernel (and init)
    code = (
        "import os, time\nfor _ in range(30):\n    if os.fork() == 0:\n"
        "        time.sleep(1000)\n        os._exit(0)\n'forked'"
    )
    assert (await executor.run_python(user_id, code)).stdout == "'forked'\n"
    zombies, _ = await counts(executor, user_id)
    assert zombies == 0
    assert (await executor.execute_bash(user_id, pythons))[1] == before  # none of the 30 left


async def test_an_unclosed_multiprocessing_pool_does_not_break_the_session(executor, user_id):
    code = "from multiprocessing import Pool\npool = Pool(4)\npool.map(abs, [-1, -2, -3])"
    assert (await executor.run_python(user_id, code)).stdout == "[1, 2, 3]\n"
    for _ in range(3):
        assert (await executor.execute_bash(user_id, "echo ok"))[:2] == (0, "ok\n")
    zombies, _ = await counts(executor, user_id)
    assert zombies < 5


async def test_a_thread_that_keeps_forking_stops_the_interpreter_and_says_why(executor, user_id):
    await executor.run_python(user_id, "kept = 1")
    code = (
        "import os, threading, time\n"
        "def forker():\n    while True:\n        if os.fork() == 0:\n"
        "            time.sleep(1000)\n            os._exit(0)\n        time.sleep(0.002)\n"
        "threading.Thread(target=forker, daemon=True).start()\ntime.sleep(0.2)\n'started'"
    )
    result = await executor.run_python(user_id, code)
    assert result.stdout == "'started'\n"
    assert result.python_state_lost
    assert "kept starting processes" in result.stderr
    for _ in range(3):
        assert (await executor.execute_bash(user_id, "echo ok"))[:2] == (0, "ok\n")
    assert await counts(executor, user_id) == (0, 0)
    after = await executor.run_python(user_id, "'kept' in globals()")
    assert after.stdout == "False\n"


async def test_a_slow_forking_thread_is_cleaned_up_at_the_next_call(executor, user_id):
    """A thread that forks now and then, between calls: each call starts clean."""
    code = (
        "import os, threading, time\n"
        "def forker():\n    while True:\n        time.sleep(0.3)\n        if os.fork() == 0:\n"
        "            os._exit(0)\n"
        "threading.Thread(target=forker, daemon=True).start()\n'ok'"
    )
    assert (await executor.run_python(user_id, code)).stdout == "'ok'\n"
    await asyncio.sleep(2)  # the thread made zombies meanwhile
    zombies, _ = await counts(executor, user_id)
    assert zombies <= 1  # at most one made while this very command ran
    assert (await executor.execute_bash(user_id, "echo ok"))[:2] == (0, "ok\n")
