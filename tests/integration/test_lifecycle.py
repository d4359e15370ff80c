"""Sessions and containers: naming, one per session, persistence, adoption, reaping, cleanup."""

from __future__ import annotations

import asyncio
import time

import pytest

import docker
from executor import DockerExecutionClient, ImageNotFoundError
from executor.manager import container_name
from tests.conftest import HOSTILE_IDS, app_containers

pytestmark = pytest.mark.docker


async def test_hostile_user_ids_get_safe_distinct_containers(executor, docker_client):
    results = await asyncio.gather(
        *(
            executor.execute_bash(uid, "hostname; cat /proc/self/cgroup | head -1")
            for uid in HOSTILE_IDS
        )
    )
    assert all(code == 0 for code, _, _ in results)
    assert len({out for _, out, _ in results}) == len(HOSTILE_IDS)  # each its own container
    for uid in HOSTILE_IDS:
        name = container_name(executor.settings.app_label, uid)
        assert name == container_name(executor.settings.app_label, uid)
        assert len(name) < 128
        label = docker_client.containers.get(name).labels["mcp-code-executor.user"]
        if uid.isprintable() or uid == "":
            assert label == uid[:1024]
        else:
            assert "\ufffd" in label  # Docker cannot hold a lone surrogate; the name still works


async def test_concurrent_first_calls_create_exactly_one_container(
    executor, docker_client, user_id
):
    results = await asyncio.gather(*(executor.execute_bash(user_id, "echo hi") for _ in range(8)))
    assert all(r == (0, "hi\n", "") for r in results)
    mine = docker_client.containers.list(
        all=True, filters={"label": f"mcp-code-executor.user={user_id}"}
    )
    assert len(mine) == 1


async def test_workspace_survives_container_being_killed_and_removed(
    executor, docker_client, user_id
):
    await executor.write_file(user_id, "data/keep.txt", "precious")
    name = container_name(executor.settings.app_label, user_id)
    docker_client.containers.get(name).kill()
    assert await executor.read_file(user_id, "data/keep.txt") == "precious"
    docker_client.containers.get(name).remove(force=True)
    code, out, _ = await executor.execute_bash(user_id, "cat data/keep.txt")
    assert (code, out) == (0, "precious")


async def test_container_killed_mid_command_is_reported_and_recovered(
    executor, docker_client, user_id
):
    await executor.execute_bash(user_id, "true")
    name = container_name(executor.settings.app_label, user_id)

    async def kill_soon():
        await asyncio.sleep(1)
        await asyncio.to_thread(docker_client.containers.get(name).kill)

    (code, _, err), _ = await asyncio.gather(
        executor.execute_bash(user_id, "sleep 20"), kill_soon()
    )
    assert code == 137
    assert "stopped while the command ran" in err
    assert (await executor.execute_bash(user_id, "echo back"))[:2] == (0, "back\n")


async def test_a_new_process_adopts_containers_left_by_an_earlier_one(
    make_executor, docker_client, user_id
):
    first = make_executor()
    await first.write_file(user_id, "a.txt", "from the first process")
    container_id = docker_client.containers.get(
        container_name(first.settings.app_label, user_id)
    ).id
    second = DockerExecutionClient(
        app_label=first.settings.app_label,
        pool_size=0,
        state_dir=first.settings.state_dir,
        audit_log=first.settings.audit_log,
    )
    await second.start()
    code, out, _ = await second.execute_bash(user_id, "cat a.txt")
    assert (code, out) == (0, "from the first process")
    assert (
        docker_client.containers.get(container_name(first.settings.app_label, user_id)).id
        == container_id
    )


async def test_idle_containers_are_stopped_then_restarted_transparently(
    make_executor, docker_client, user_id
):
    client = make_executor(idle_timeout_s=1.0)
    await client.write_file(user_id, "x.txt", "kept")
    name = container_name(client.settings.app_label, user_id)
    deadline = time.monotonic() + 15
    while docker_client.containers.get(name).status == "running" and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.5)  # the background reaper stops it
    assert docker_client.containers.get(name).status == "exited"
    assert await client.read_file(user_id, "x.txt") == "kept"
    assert docker_client.containers.get(name).status == "running"


async def test_stop_and_cleanup_container(executor, docker_client, user_id):
    await executor.write_file(user_id, "x.txt", "kept")
    name = container_name(executor.settings.app_label, user_id)
    executor.stop_container(user_id)
    assert docker_client.containers.get(name).status == "exited"
    executor.cleanup_container(user_id)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(name)
    assert await executor.read_file(user_id, "x.txt") == "kept"  # the volume stayed


async def test_cleanup_all_leaves_no_container_and_volumes_when_asked(make_executor, docker_client):
    client = make_executor()
    await asyncio.gather(*(client.execute_bash(f"u{i}", "true") for i in range(3)))
    label = client.settings.app_label
    assert len(app_containers(docker_client, label)) == 3
    client.cleanup_all()
    assert app_containers(docker_client, label) == []
    volumes = docker_client.volumes.list(filters={"label": f"mcp-code-executor.app={label}"})
    assert len(volumes) == 3
    client.cleanup_all(remove_volumes=True)
    assert docker_client.volumes.list(filters={"label": f"mcp-code-executor.app={label}"}) == []


async def test_missing_image_says_how_to_build_it(docker_client, tmp_path):
    client = DockerExecutionClient(
        "mcp-code-executor:does-not-exist",
        app_label="mce-noimage",
        state_dir=tmp_path,
        audit_log=tmp_path / "audit.jsonl",
    )
    with pytest.raises(ImageNotFoundError, match="make image"):
        await client.execute_bash("u", "true")


async def test_retention_deletes_old_unused_workspaces_but_never_a_live_one(
    make_executor, docker_client, state_dir
):
    client = make_executor(workspace_retention_days=2 / 86400)  # two seconds, same logic
    label = client.settings.app_label
    await client.write_file("old-stopped", "a.txt", "old")
    await client.stop("old-stopped")
    await client.write_file("old-running", "b.txt", "still running")
    await asyncio.sleep(2.5)
    await client.write_file("recent", "c.txt", "new")
    deleted = await client.apply_retention()
    assert deleted == [(await client.sandbox_info("old-stopped")).volume]
    volumes = docker_client.volumes.list(filters={"label": f"mcp-code-executor.app={label}"})
    names = {v.name for v in volumes}
    assert (await client.sandbox_info("old-running")).volume in names
    assert (await client.sandbox_info("recent")).volume in names
    assert await client.read_file("old-running", "b.txt") == "still running"
    with pytest.raises(FileNotFoundError):  # the chat goes on with an empty workspace
        await client.read_file("old-stopped", "a.txt")
    audit = client.settings.audit_log.read_text()
    assert '"operation": "retention_delete"' in audit
