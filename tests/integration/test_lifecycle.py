"""Sessions and containers: naming, one per session, persistence, adoption, reaping, cleanup."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from executor import DockerExecutionClient, ImageNotFoundError
from executor.manager import container_name
from tests.conftest import HOSTILE_IDS
from tests.support import audit_lines, wait_for

pytestmark = pytest.mark.docker


@pytest.mark.docker_only("reads the labels as Docker holds them (Kubernetes: test_objects.py)")
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


async def on_engine(client: DockerExecutionClient, verb: str, *args):
    """Call the client's engine directly (what happens to a container from outside)."""
    return await asyncio.to_thread(getattr(client.engine, verb), *args)


async def test_concurrent_first_calls_create_exactly_one_container(make_executor, user_id):
    client = make_executor()
    results = await asyncio.gather(*(client.execute_bash(user_id, "echo hi") for _ in range(8)))
    assert all(r == (0, "hi\n", "") for r in results)
    assert (await client.inventory()).sessions == 1


async def test_workspace_survives_container_being_killed_and_removed(executor, user_id):
    await executor.write_file(user_id, "data/keep.txt", "precious")
    name = container_name(executor.settings.app_label, user_id)
    await on_engine(executor, "kill", name)
    assert await executor.read_file(user_id, "data/keep.txt") == "precious"
    await on_engine(executor, "remove", name)
    code, out, _ = await executor.execute_bash(user_id, "cat data/keep.txt")
    assert (code, out) == (0, "precious")


async def test_container_killed_mid_command_is_reported_and_recovered(executor, user_id):
    await executor.execute_bash(user_id, "true")
    name = container_name(executor.settings.app_label, user_id)

    async def kill_soon():
        await asyncio.sleep(1)
        await on_engine(executor, "kill", name)

    (code, _, err), _ = await asyncio.gather(
        executor.execute_bash(user_id, "sleep 20"), kill_soon()
    )
    assert code == 137
    assert "stopped while the command ran" in err
    assert (await executor.execute_bash(user_id, "echo back"))[:2] == (0, "back\n")


async def test_a_new_process_adopts_containers_left_by_an_earlier_one(make_executor, user_id):
    first = make_executor()
    await first.write_file(user_id, "a.txt", "from the first process")
    name = container_name(first.settings.app_label, user_id)
    container_id = (await on_engine(first, "inspect", name)).id
    second = make_executor(app_label=first.settings.app_label, audit_log=first.settings.audit_log)
    await second.start()
    code, out, _ = await second.execute_bash(user_id, "cat a.txt")
    assert (code, out) == (0, "from the first process")
    assert (await on_engine(second, "inspect", name)).id == container_id  # the same, not a new one


async def test_idle_containers_are_stopped_then_restarted_transparently(make_executor, user_id):
    client = make_executor(idle_timeout_s=1.0)
    await client.write_file(user_id, "x.txt", "kept")
    name = container_name(client.settings.app_label, user_id)

    async def running() -> bool:
        info = await on_engine(client, "inspect", name)
        return info is not None and info.running

    deadline = time.monotonic() + 15
    while await running() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.5)  # the background reaper stops it
    assert not await running()
    assert await client.read_file(user_id, "x.txt") == "kept"
    assert await running()


async def test_stop_then_remove_container_keeps_the_workspace(executor, user_id):
    await executor.write_file(user_id, "x.txt", "kept")
    name = container_name(executor.settings.app_label, user_id)
    await executor.stop(user_id)
    info = await on_engine(executor, "inspect", name)
    assert info is None or not info.running  # stopped (a pod is deleted: its volume stays)
    await executor.remove_container(user_id)
    assert await on_engine(executor, "inspect", name) is None
    assert await executor.read_file(user_id, "x.txt") == "kept"  # the volume stayed


async def test_cleanup_all_leaves_no_container_and_volumes_when_asked(make_executor):
    client = make_executor()
    await asyncio.gather(*(client.execute_bash(f"u{i}", "true") for i in range(3)))
    assert (await client.inventory()).sessions == 3
    client.cleanup_all()
    inventory = await client.inventory()
    assert (inventory.sessions, inventory.volumes) == (0, 3)
    client.cleanup_all(remove_volumes=True)
    assert (await client.inventory()).volumes == 0


async def test_missing_image_says_how_to_build_it(docker_client, tmp_path):
    client = DockerExecutionClient(
        "mcp-code-executor:does-not-exist",
        app_label="mce-noimage",
        state_dir=tmp_path,
        audit_log=tmp_path / "audit.jsonl",
    )
    with pytest.raises(ImageNotFoundError, match="make image"):
        await client.execute_bash("u", "true")


async def test_retention_deletes_old_unused_workspaces_but_never_a_live_one(make_executor):
    client = make_executor(workspace_retention_days=2 / 86400)  # two seconds, same logic
    label = client.settings.app_label
    await client.write_file("old-stopped", "a.txt", "old")
    await client.stop("old-stopped")
    await client.write_file("old-running", "b.txt", "still running")
    await asyncio.sleep(2.5)
    await client.write_file("recent", "c.txt", "new")
    deleted = await client.apply_retention()
    assert deleted == [(await client.sandbox_info("old-stopped")).volume]
    volumes = await on_engine(client, "list_volumes", {"mcp-code-executor.app": label})
    names = {v.name for v in volumes}
    assert (await client.sandbox_info("old-running")).volume in names
    assert (await client.sandbox_info("recent")).volume in names
    assert await client.read_file("old-running", "b.txt") == "still running"
    with pytest.raises(FileNotFoundError):  # the chat goes on with an empty workspace
        await client.read_file("old-stopped", "a.txt")
    audit = client.settings.audit_log.read_text()
    assert '"operation": "retention_delete"' in audit


async def test_closing_an_mcp_sandbox_with_its_workspace_is_the_audited_deletion(
    make_executor, tmp_path
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
    assert await on_engine(client, "inspect", info.container_name) is None
    assert (await client.inventory()).volumes == 0
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
