"""The warm pool: fast first commands, strict isolation, refill, persistence and clean shutdown."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

from executor import DockerExecutionClient
from executor.pool import POOL_LABEL
from tests.conftest import app_containers
from tests.support import wait_for

pytestmark = pytest.mark.docker


def pool_containers(docker_client, label: str) -> list:
    return docker_client.containers.list(
        all=True,
        filters={"label": [f"mcp-code-executor.app={label}", f"{POOL_LABEL}=1"]},
        ignore_removed=True,  # members going away meanwhile are left out
    )


@pytest.fixture
async def pooled(make_executor):
    client = make_executor(pool_size=2, pool_check_interval_s=0.5)
    await client.start()
    await wait_for(lambda: client.pool_status().ready == 2, what="the pool to fill")
    return client


@pytest.mark.docker_only(
    "Docker's view of the pool's members (Kubernetes: test_engine_api.py, test_exec_websocket.py)"
)
async def test_new_session_takes_a_ready_container_and_the_pool_refills(pooled, docker_client):
    ready_names = {c.name for c in pool_containers(docker_client, pooled.settings.app_label)}
    code, out, _ = await pooled.execute_bash("pool-user-a", "echo hi")
    assert (code, out) == (0, "hi\n")
    taken = (await pooled.sandbox_info("pool-user-a")).container_name
    assert taken in ready_names  # no container start on the first command
    await wait_for(lambda: pooled.pool_status().ready == 2, what="the refill")
    assert len(pool_containers(docker_client, pooled.settings.app_label)) == 3  # never above size


async def test_nothing_of_one_session_is_visible_to_the_next(pooled):
    await pooled.execute_bash(
        "pool-first",
        "echo mine > /workspace/secret.txt; echo mine > /tmp/secret.txt; echo mine > ~/secret.txt",
    )
    code, out, _ = await pooled.execute_bash(
        "pool-second",
        "ls -A /workspace /tmp ~; ps -eo user=,args= | grep -c '^coderun.*sleep' || true",
    )
    assert code == 0
    assert "secret" not in out
    first, second = [
        (await pooled.sandbox_info(u)).container_name for u in ("pool-first", "pool-second")
    ]
    assert first != second


@pytest.mark.docker_only(
    "Docker's view of the pool's members (Kubernetes: test_engine_api.py, test_exec_websocket.py)"
)
async def test_a_killed_pool_member_is_replaced(pooled, docker_client):
    victim = pool_containers(docker_client, pooled.settings.app_label)[0]
    victim.kill()
    await wait_for(
        lambda: (
            victim.name
            not in {c.name for c in pool_containers(docker_client, pooled.settings.app_label)}
        ),
        what="the dead member to be discarded",
    )
    await wait_for(lambda: pooled.pool_status().ready == 2, what="a replacement")
    code, _, _ = await pooled.execute_bash("after-kill", "true")
    assert code == 0


@pytest.mark.docker_only(
    "Docker's view of the pool's members (Kubernetes: test_engine_api.py, test_exec_websocket.py)"
)
async def test_pooled_workspace_survives_removal_and_restart(pooled, docker_client, state_dir):
    await pooled.write_file("keeper", "k.txt", "kept")
    name = (await pooled.sandbox_info("keeper")).container_name
    docker_client.containers.get(name).remove(force=True)
    assert await pooled.read_file("keeper", "k.txt") == "kept"  # recreated on the same volume
    # A new process (same label and state) finds the session's pooled container and volume.
    again = DockerExecutionClient(
        app_label=pooled.settings.app_label,
        pool_size=0,
        state_dir=pooled.settings.state_dir,
        audit_log=pooled.settings.audit_log,
    )
    assert await again.read_file("keeper", "k.txt") == "kept"


CRASHING_APP = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from executor import DockerExecutionClient

    async def main():
        client = DockerExecutionClient(
            app_label=sys.argv[1], state_dir=sys.argv[2], audit_log=sys.argv[2] + "/a.jsonl",
            pool_size=2, pool_check_interval_s=0.5,
        )
        await client.start()
        while client.pool_status().ready < 2:
            await asyncio.sleep(0.2)
        print("ready", flush=True)
        os._exit(0)  # the process dies: nothing is cleaned up

    asyncio.run(main())
    """
)


async def test_unclaimed_members_are_removed_at_shutdown_and_after_a_crash(
    app_label, state_dir, docker_client
):
    label = f"{app_label}-crash"
    crashed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CRASHING_APP, label, str(state_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=os.getcwd(),
        check=False,
    )
    assert crashed.stdout.strip() == "ready", crashed.stderr[-2000:]
    assert len(pool_containers(docker_client, label)) == 2
    successor = DockerExecutionClient(
        app_label=label,
        pool_size=1,
        pool_check_interval_s=0.5,
        state_dir=state_dir,
        audit_log=state_dir / "audit-crash.jsonl",
    )
    await successor.start()  # sweeps the unclaimed members of the crashed process
    await wait_for(lambda: successor.pool_status().ready == 1, what="the new pool")
    assert len(pool_containers(docker_client, label)) == 1
    await successor.aclose(remove_containers=False)
    assert pool_containers(docker_client, label) == []
    volumes = docker_client.volumes.list(
        filters={"label": [f"mcp-code-executor.app={label}", f"{POOL_LABEL}=1"]}
    )
    assert volumes == []


@pytest.mark.docker_only(
    "Docker's view of the pool's members (Kubernetes: test_engine_api.py, test_exec_websocket.py)"
)
async def test_a_pooled_session_uses_the_runner_started_ahead(pooled, docker_client):
    label = pooled.settings.app_label
    ahead = {}
    for member in pool_containers(docker_client, label):
        _, out = member.exec_run(["pgrep", "-f", "sandbox-runner"], user="1000:1000")
        ahead[member.name] = out.decode().split()
    result = await pooled.run("pool-fast", "echo quick")
    assert (result.stdout, result.runner) == ("quick\n", True)
    info = await pooled.sandbox_info("pool-fast")
    assert [str(info.runner_pid)] == ahead[info.container_name]  # the one started ahead
    runners = (await pooled.execute_bash("pool-fast", "pgrep -c -f sandbox-runner"))[1]
    assert runners.strip() == "1"  # no second runner was started


@pytest.mark.docker_only(
    "Docker's view of the pool's members (Kubernetes: test_engine_api.py, test_exec_websocket.py)"
)
async def test_a_session_with_a_workspace_keeps_it_instead_of_taking_a_pooled_one(
    make_executor, docker_client
):
    first = make_executor()  # no pool: a normal session container and volume
    await first.write_file("returning", "mine.txt", "still mine")
    await first.remove_container("returning")  # the container goes while the app is down
    again = DockerExecutionClient(
        app_label=first.settings.app_label,
        pool_size=1,
        pool_check_interval_s=0.5,
        state_dir=first.settings.state_dir,
        audit_log=first.settings.audit_log,
    )
    await again.start()
    await wait_for(lambda: again.pool_status().ready == 1, what="the pool to fill")
    assert await again.read_file("returning", "mine.txt") == "still mine"
    assert again.pool_status().ready == 1  # the pooled container was not taken
    await again.aclose()


async def test_the_first_python_call_finds_its_kernel_already_running(pooled):
    await asyncio.sleep(1.5)  # members were made (kernel included) before the session arrived
    age = await pooled.run_python(
        "pool-kernel",
        "import os\n"
        "ticks = int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19])\n"
        "up = float(open('/proc/uptime').read().split()[0])\n"
        "print(up - ticks / os.sysconf('SC_CLK_TCK'))",
    )
    assert age.exit_code == 0, age.stderr
    assert float(age.stdout) > 1.0  # the interpreter is older than the call


@pytest.mark.docker_only(
    "Docker's view of the pool's members (Kubernetes: test_engine_api.py, test_exec_websocket.py)"
)
async def test_the_pool_grows_with_a_crowd_and_shrinks_when_it_is_gone(
    make_executor, docker_client
):
    client = make_executor(pool_size=1, pool_max_size=5, pool_window_s=6, pool_check_interval_s=0.3)
    await client.start()
    await wait_for(lambda: client.pool_status().ready == 1, what="the pool to fill")
    label = client.settings.app_label
    crowd = [f"grow-{i}" for i in range(4)]
    outs = await asyncio.gather(*(client.execute_bash(key, "echo in") for key in crowd))
    assert [code for code, _, _ in outs] == [0] * 4
    assert client.pool_status().target == 4  # as many as just arrived
    await wait_for(lambda: client.pool_status().ready == 4, what="the pool to grow")
    # The next crowd of that size finds a warm container each.
    ready = {c.name for c in pool_containers(docker_client, label)}
    again = [f"again-{i}" for i in range(4)]
    await asyncio.gather(*(client.execute_bash(key, "true") for key in again))
    taken = {(await client.sandbox_info(key)).container_name for key in again}
    assert taken <= ready
    # Quiet for a window: back to the floor, surplus containers and volumes removed.
    await wait_for(lambda: client.pool_status().target == 1, timeout=20, what="the target to fall")
    await wait_for(
        lambda: len(app_containers(docker_client, label)) == 9,  # 8 sessions + the floor
        timeout=20,
        what="surplus members to go",
    )
    volumes = docker_client.volumes.list(filters={"label": f"mcp-code-executor.app={label}"})
    assert len(volumes) == 9


@pytest.mark.docker_only(
    "Docker's view of the pool's members (Kubernetes: test_engine_api.py, test_exec_websocket.py)"
)
async def test_the_pool_never_grows_past_its_memory_budget(make_executor, docker_client):
    client = make_executor(
        pool_size=1,
        pool_max_size=50,
        pool_member_memory_bytes=64 << 20,
        pool_memory_budget_bytes=(64 << 20) * 3,
        pool_window_s=60,
        pool_check_interval_s=0.3,
    )
    await client.start()
    assert client.pool_status().ceiling == 3
    await asyncio.gather(*(client.execute_bash(f"budget-{i}", "true") for i in range(6)))
    assert client.pool_status().target == 3
    await wait_for(lambda: client.pool_status().ready == 3, what="the pool to fill to its ceiling")
    await asyncio.sleep(1.5)  # a few more checks: nothing beyond the ceiling is made
    assert len(app_containers(docker_client, client.settings.app_label)) == 6 + 3


async def test_a_crowd_gets_one_container_each_and_sees_only_its_own_files(make_executor):
    client = make_executor(pool_size=4, pool_check_interval_s=0.3)
    await client.start()
    await wait_for(lambda: client.pool_status().ready == 4, what="the pool to fill")
    keys = [f"crowd-{i}" for i in range(10)]  # more than are ready: some start cold meanwhile
    outs = await asyncio.gather(
        *(
            client.execute_bash(key, f"echo {key} > /workspace/owner-{key}; ls /workspace /tmp")
            for key in keys
        )
    )
    for key, (code, out, err) in zip(keys, outs, strict=True):
        assert code == 0, err
        assert [line for line in out.split() if line.startswith("owner-")] == [f"owner-{key}"]
    names = [(await client.sandbox_info(key)).container_name for key in keys]
    volumes = [(await client.sandbox_info(key)).volume for key in keys]
    assert len(set(names)) == len(keys)
    assert len(set(volumes)) == len(keys)
    for key in keys:  # and it stays that way on the next command
        code, out, _ = await client.execute_bash(key, "cat /workspace/owner-*")
        assert out == f"{key}\n"


@pytest.mark.docker_only(
    "Docker's view of the pool's members (Kubernetes: test_engine_api.py, test_exec_websocket.py)"
)
async def test_the_pool_refills_only_after_a_crowds_containers_are_made(
    make_executor, docker_client
):
    """People waiting come first: members made during a crowd would take the daemon from them."""
    client = make_executor(
        pool_size=2, pool_max_size=8, pool_window_s=30, pool_check_interval_s=0.2
    )
    await client.start()
    await wait_for(lambda: client.pool_status().ready == 2, what="the pool to fill")
    label = client.settings.app_label
    before = {c.name for c in pool_containers(docker_client, label)}
    keys = [f"first-{i}" for i in range(14)]  # 2 warm, 12 made now (a few at a time)
    outs = await asyncio.gather(*(client.execute_bash(key, "true") for key in keys))
    assert [code for code, _, _ in outs] == [0] * len(keys)
    await wait_for(lambda: client.pool_status().ready >= 2, what="the refill")

    def created(name: str) -> str:
        return docker_client.api.inspect_container(name)["Created"]  # RFC 3339, sortable

    sessions = [(await client.sandbox_info(key)).container_name for key in keys]
    made_for_sessions = [created(name) for name in sessions if name not in before]
    refilled = [c.name for c in pool_containers(docker_client, label) if c.name not in before]
    assert len(made_for_sessions) == 12
    assert refilled
    assert min(created(name) for name in refilled) > max(made_for_sessions)
