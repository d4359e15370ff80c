"""Operations: the audit log and per-user limits, against real Docker."""

from __future__ import annotations

import asyncio
import time

import pytest

from executor import DockerExecutionClient, RateLimitedError, chat_key
from executor.manager import container_name
from tests.support import audit_lines

pytestmark = pytest.mark.docker

CANARY = "host-secret-canary-7f3a9"


async def test_every_operation_is_audited_without_host_secrets(
    monkeypatch, app_label, state_dir, docker_client
):
    monkeypatch.setenv("GOOGLE_API_KEY", CANARY)
    log = state_dir / "audit-ops.jsonl"
    client = DockerExecutionClient(
        app_label=f"{app_label}-audit", pool_size=0, state_dir=state_dir, audit_log=log
    )
    key = chat_key("alice", "chat-1")
    try:
        await client.execute_bash(key, f"echo {CANARY} | wc -c; exit 3")
        await client.write_file(key, "notes.txt", "hello")
        await client.upload_file(key, "data.bin", b"\0" * 1000)
        assert await client.download_file(key, "data.bin") == b"\0" * 1000
        with pytest.raises(FileNotFoundError):
            await client.download_file(key, "missing.bin")
    finally:
        client.cleanup_all(remove_volumes=True)
    text = log.read_text()
    assert CANARY not in text
    lines = audit_lines(log)
    assert [(e["operation"], e["target"]) for e in lines] == [
        ("execute", "echo [REDACTED] | wc -c; exit 3"),
        ("upload", "notes.txt"),
        ("upload", "data.bin"),
        ("download", "data.bin"),
        ("download", "missing.bin"),
        ("cleanup_delete", f"{container_name(client.settings.app_label, key)}-workspace"),
    ]
    execute, _, upload, download, missing, deleted = lines
    assert (deleted["user"], deleted["session"]) == ("alice", "chat-1")  # whose files went
    assert (execute["user"], execute["session"], execute["exit_code"]) == ("alice", "chat-1", 3)
    assert execute["duration_s"] > 0
    assert upload["bytes_in"] == 1000
    assert download["bytes_out"] == 1000
    assert "SandboxFileNotFoundError" in missing["error"]
    assert all(e["time"].endswith("Z") for e in lines)


async def test_audit_log_rotates_by_size(make_executor, state_dir, user_id):
    log = state_dir / "audit-rotate.jsonl"
    client = make_executor(audit_log=log, audit_max_bytes=1500, audit_backups=2)
    for i in range(12):
        await client.execute_bash(user_id, f"echo {i}")
    assert log.exists()
    assert (state_dir / "audit-rotate.jsonl.1").exists()
    assert log.stat().st_size <= 1500


async def test_the_rate_limit_lets_a_burst_through_then_queues_then_refuses(make_executor):
    client = make_executor(
        max_executions_per_minute=60, max_executions_burst=3, limit_wait_s=5
    )  # a token a second
    mine, other = chat_key("bob", "c"), chat_key("carol", "c")
    started = time.monotonic()
    for _ in range(3):
        assert (await client.execute_bash(mine, "true"))[0] == 0
    assert (await client.execute_bash(mine, "echo waited"))[:2] == (0, "waited\n")
    assert time.monotonic() - started > 0.7  # the fourth waited for a token
    assert (await client.execute_bash(other, "true"))[0] == 0  # other users are not affected
    # A token every 10 s: the refusal cannot be dodged by a first call (a pod starting) that
    # takes more than a second.
    impatient = make_executor(max_executions_per_minute=6, max_executions_burst=1, limit_wait_s=0.2)
    await impatient.execute_bash(mine, "true")
    with pytest.raises(RateLimitedError, match="6 executions per minute") as info:
        await impatient.execute_bash(mine, "true")
    assert info.value.limit == "executions_per_minute"
    assert 1 <= info.value.retry_after_s <= 10


async def test_eight_parallel_calls_in_one_session_all_succeed(make_executor):
    """An agent turn with parallel tool calls: over the concurrency limit they queue (one
    container runs one command at a time anyway) instead of being refused."""
    client = make_executor(max_concurrent_executions=4, max_executions_per_minute=60)
    key = chat_key("dave", "c")
    results = await asyncio.gather(
        *(client.execute_bash(key, f"sleep 0.2; echo {i}") for i in range(8))
    )
    assert [r[:2] for r in results] == [(0, f"{i}\n") for i in range(8)]


async def test_a_call_that_cannot_start_within_the_wait_is_refused(make_executor):
    client = make_executor(max_concurrent_executions=1, limit_wait_s=0.3)
    key = chat_key("dave", "c")
    first = asyncio.create_task(client.execute_bash(key, "sleep 1.5; echo first"))
    await asyncio.sleep(0.5)
    with pytest.raises(RateLimitedError, match="1 executions at once"):
        await client.execute_bash(chat_key("dave", "other-chat"), "true")
    assert (await first)[1] == "first\n"
    assert (await client.execute_bash(key, "true"))[0] == 0


async def test_live_sessions_limit_and_recovery(make_executor):
    client = make_executor(max_live_sessions=2)
    a, b, c = (chat_key("erin", s) for s in "abc")
    await client.execute_bash(a, "true")
    await client.write_file(b, "x.txt", "x")
    started = time.monotonic()
    with pytest.raises(RateLimitedError, match="2 live sessions"):
        await client.execute_bash(c, "true")
    assert time.monotonic() - started < 1  # refused before any container is made
    await client.execute_bash(chat_key("frank", "a"), "true")  # another user
    await client.stop(a)
    assert (await client.execute_bash(c, "echo ok"))[:2] == (0, "ok\n")
    assert await client.read_file(b, "x.txt") == "x"  # nothing lost
