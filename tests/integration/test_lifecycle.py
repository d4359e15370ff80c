"""Sessions and containers: naming, one per session, persistence, adoption, reaping, cleanup."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

import docker
from executor import DockerExecutionClient, ImageNotFoundError
from executor.manager import container_name
from tests.conftest import HOSTILE_IDS, app_containers
from tests.support import audit_lines, wait_for

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
    names = {uid: (await executor.sandbox_info(uid)).container_name for uid in HOSTILE_IDS}
    assert len(set(names.values())) == len(HOSTILE_IDS)  # distinct names, one container each
    for uid, name in names.items():
        assert re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name), name  # safe for any engine
        assert len(name) < 128
        assert name == container_name(executor.settings.app_label, uid)  # found again by name
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


async def test_stop_then_remove_container_keeps_the_workspace(executor, docker_client, user_id):
    await executor.write_file(user_id, "x.txt", "kept")
    name = container_name(executor.settings.app_label, user_id)
    await executor.stop(user_id)
    assert docker_client.containers.get(name).status == "exited"
    await executor.remove_container(user_id)
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


async def test_closing_an_mcp_sandbox_with_its_workspace_is_the_audited_deletion(
    make_executor, docker_client, tmp_path
):
    """MCP's close_sandbox(delete_workspace=True) goes through the UI's deletion verb: container
    and workspace gone, the handle forgotten, one audit line saying who deleted what."""
    from mcp_server import NoSuchSandbox, Sandboxes, SandboxStore

    client = make_executor()
    sandboxes = Sandboxes(SandboxStore(tmp_path / "mcp.db"), client)
    handle = await sandboxes.create("alice", "scratch")
    await client.write_file(handle.key, "secret.txt", "gone soon")
    info = await client.sandbox_info(handle.key)
    await sandboxes.close("alice", handle.sandbox_id, delete_workspace=True)
    assert not docker_client.containers.list(all=True, filters={"name": info.container_name})
    assert not docker_client.volumes.list(filters={"name": info.volume})
    with pytest.raises(NoSuchSandbox):
        await sandboxes.resolve("alice", handle.sandbox_id)
    deletions = [e for e in audit_lines(client.settings.audit_log) if e["operation"] == "delete"]
    assert [(e["user"], e["session"], e.get("error")) for e in deletions] == [
        ("alice", f"mcp:{handle.sandbox_id}", None)
    ]


async def test_a_deleted_session_starts_afresh_from_the_warm_pool_after_a_restart(
    make_executor, tmp_path
):
    """Deleting forgets every record of the workspace: a session that had one before a restart,
    once deleted, takes a warm container again (instead of waiting to make its own)."""
    first = make_executor()
    await first.write_file("returning", "old.txt", "from before the restart")
    again = make_executor(
        app_label=first.settings.app_label, pool_size=1, pool_check_interval_s=0.5
    )
    await again.start()
    await wait_for(lambda: again.pool_status().ready == 1, what="the pool to fill")
    await again.delete_session("returning")
    await again.write_file("returning", "new.txt", "fresh")
    info = await again.sandbox_info("returning")
    assert "-pool-" in info.container_name  # took the warm member
    assert [f.path for f in await again.list_files("returning")] == ["/workspace/new.txt"]
    assert [e["operation"] for e in audit_lines(again.settings.audit_log)][-2:] == [
        "delete",
        "upload",
    ]


async def test_every_deletion_leaves_an_audit_line_a_no_op_one_too(make_executor):
    client = make_executor()
    await client.write_file("doomed", "a.txt", "x")
    client.cleanup_all(remove_volumes=True)  # `make cleanup --yes`
    await client.delete_session("never-made")  # nothing there: still said
    entries = audit_lines(client.settings.audit_log)
    assert [(e["operation"], e["user"]) for e in entries[1:]] == [
        ("cleanup_delete", "doomed"),
        ("delete", "never-made"),
    ]
