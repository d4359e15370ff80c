"""The hub against servers that misbehave (servers/hostile.py): hangs, crashes, floods, huge
answers, requests the client must refuse, forged calls, and process clean-up."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import tracemalloc

import pytest

from code_mode import ServerListing, ToolSpec

from .conftest import alive, call, ctx, hostile, ok

pytestmark = pytest.mark.code_mode


def pid_of(hub, server="bad") -> int:
    return int(ok(call(hub, server, "pid")))


def test_concurrent_calls_share_one_session_and_all_answer(make_hub):
    hub = make_hub({"bad": hostile()})
    hub.tree("alice")

    async def eight():
        started = time.monotonic()
        answers = await asyncio.gather(
            *(hub.call(ctx(), "bad", "slow", {"seconds": 1}) for _ in range(8))
        )
        return answers, time.monotonic() - started

    answers, took = asyncio.run(eight())
    assert [a.value for a in answers] == ["slept"] * 8
    assert took < 4, f"8 one-second calls took {took:.1f} s: not multiplexed"
    assert hub.statuses()[0].state == "ready"


def test_a_server_that_crashes_mid_call_fails_that_call_and_restarts_on_the_next(make_hub):
    hub = make_hub({"bad": hostile()})
    hub.tree("alice")
    first = pid_of(hub)
    crashed = call(hub, "bad", "crash")
    assert not crashed.ok
    assert "exited (exit code 3) during the call to crash" in crashed.error
    assert "started again on the next call" in crashed.error
    assert "about to crash" not in crashed.error  # stderr stays on the host
    status = hub.statuses()[0]
    assert status.state == "failed"
    assert "about to crash" in status.last_error
    second = pid_of(hub)
    assert second != first
    assert not alive(first)


def test_a_server_killed_between_calls_is_restarted_by_the_next(make_hub):
    hub = make_hub({"bad": hostile()})
    hub.tree("alice")
    first = pid_of(hub)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(first) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # its end of stdout is seen
    assert pid_of(hub) != first  # the first call after the kill is answered, by a new process


def test_close_answers_calls_still_waiting(make_hub):
    hub = make_hub({"bad": hostile()})
    hub.tree("alice")

    async def wait_then_close():
        pending = asyncio.ensure_future(hub.call(ctx(), "bad", "slow", {"seconds": 60}))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(hub.close)
        return await asyncio.wait_for(pending, 10)

    answer = asyncio.run(wait_then_close())
    assert not answer.ok
    assert answer.error in {
        "MCP server 'bad' was stopped (shutdown) during the call to slow",
        "code mode shut down during the call",
    }


def test_a_hanging_server_times_out_and_is_restarted_not_left_wedged(make_hub):
    hub = make_hub({"bad": hostile()}, call_timeout_s=1.0)
    hub.tree("alice")
    first = pid_of(hub)
    started = time.monotonic()
    hung = call(hub, "bad", "hang")
    assert time.monotonic() - started < 3
    assert not hung.ok
    assert "did not answer within 1 s" in hung.error
    # the probe that follows finds it wedged and restarts it; the next call gets a fresh one
    deadline = time.monotonic() + 15
    while hub.statuses()[0].state != "failed" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hub.statuses()[0].state == "failed"
    assert pid_of(hub) != first  # a fresh process answers at once...
    deadline = time.monotonic() + 10
    while alive(first) and time.monotonic() < deadline:  # ...while the wedged one is ended
        time.sleep(0.1)
    assert not alive(first)


def test_a_cancelled_call_leaves_the_server_usable(make_hub):
    hub = make_hub({"bad": hostile()})
    hub.tree("alice")

    async def cancel_one():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(hub.call(ctx(), "bad", "slow", {"seconds": 30}), 0.5)

    asyncio.run(cancel_one())
    assert ok(call(hub, "bad", "echo", {"text": "still here"})) == "still here"
    deadline = time.monotonic() + 5
    while hub._connections["bad"].in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub._connections["bad"].in_flight == 0


def test_a_flood_of_notifications_neither_grows_memory_nor_stalls_calls(make_hub):
    hub = make_hub({"bad": hostile(env={"FLOOD_BACKGROUND": "1"})})
    hub.tree("alice")

    async def calls():
        return await asyncio.wait_for(
            asyncio.gather(
                *(hub.call(ctx(), "bad", "echo", {"text": str(i)}) for i in range(8)),
                hub.call(ctx(), "bad", "flood", {"count": 100_000}),
            ),
            timeout=60,
        )

    tracemalloc.start()
    try:
        started = time.monotonic()
        answers = asyncio.run(calls())
        took = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [a.value for a in answers[:8]] == [str(i) for i in range(8)]
    assert answers[8].value == "sent 100000 notifications"
    transport = hub._connections["bad"]._transport
    assert transport.dropped_notifications > 100_000
    assert peak < 32 << 20, f"peak {peak / 1e6:.0f} MB while flooded"
    assert took < 60


def test_a_50_mb_answer_is_refused_with_its_size_in_bounded_memory(make_hub):
    hub = make_hub({"bad": hostile()})
    hub.tree("alice")
    tracemalloc.start()
    try:
        refused = call(hub, "bad", "big", {"megabytes": 50})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not refused.ok
    assert "50,000,100 bytes" in refused.error
    assert "limit of 16,777,216 bytes" in refused.error
    # at most one capped message is held (2 x 16 MiB + 1 MiB), never the whole 50 MB
    assert peak < 45 << 20, f"peak {peak / 1e6:.0f} MB"
    assert ok(call(hub, "bad", "echo", {"text": "after"})) == "after"  # same session goes on


def test_a_result_over_16_mib_as_a_value_is_refused_with_size_and_limit(make_hub):
    hub = make_hub({"bad": hostile()})
    hub.tree("alice")
    refused = call(hub, "bad", "big", {"megabytes": 20})
    assert not refused.ok
    assert "20,000,002 bytes as JSON" in refused.error
    assert "16 MiB" in refused.error


def test_sampling_elicitation_and_roots_requests_are_answered_with_errors(make_hub):
    hub = make_hub({"bad": hostile()})
    hub.tree("alice")
    for kind in ("sampling", "elicitation", "roots"):
        answer = ok(call(hub, "bad", "ask", {"kind": kind}))
        assert '"error"' in answer, answer
        assert "not supported" in answer, answer


def test_a_tool_error_carries_the_servers_message(make_hub):
    hub = make_hub({"bad": hostile()})
    hub.tree("alice")
    failed = call(hub, "bad", "fail", {"message": "the disk is full"})
    assert not failed.ok
    assert failed.error == "the disk is full"


def test_forged_calls_are_refused_without_starting_the_server(make_hub, tmp_path):
    servers = {"bad": hostile(users=["alice"]), "other": hostile(users=["bob"])}
    hub = make_hub(servers)
    for server in hub.config.servers:  # listed before: the catalog knows their tools
        spec = ToolSpec(name="echo", input_schema={"type": "object"})
        hub.catalog.put(ServerListing(server.name, server.fingerprint, (spec,), listed_at=1.0))
    foreign = call(hub, "other", "echo", {"text": "x"}, owner="alice")
    assert not foreign.ok
    assert "no MCP server 'other' is configured for user 'alice'" in foreign.error
    unknown = call(hub, "bad", "rm_rf", {}, owner="alice")
    assert not unknown.ok
    assert "has no tool 'rm_rf' (its tools: echo)" in unknown.error
    nowhere = call(hub, "nowhere", "x", {}, owner="alice")
    assert not nowhere.ok
    assert "configured: bad" in nowhere.error
    assert [s.state for s in hub.statuses()] == ["not started", "not started"]
    assert "other.py" not in hub.tree("alice").files  # nor does alice's tree show it


def test_bad_arguments_are_refused_on_the_host(make_hub):
    hub = make_hub({"bad": hostile()})
    hub.tree("alice")
    wrong = call(hub, "bad", "echo", {"text": 5})
    assert not wrong.ok
    assert "bad arguments for bad.echo at 'text'" in wrong.error
    missing = call(hub, "bad", "echo", {})
    assert not missing.ok
    assert "'text' is a required property" in missing.error


def test_a_changed_tool_list_changes_the_tree(make_hub):
    hub = make_hub({"bad": hostile()})
    before = hub.tree("alice")
    ok(call(hub, "bad", "add_tool"))
    deadline = time.monotonic() + 10
    while hub.tree("alice").version == before.version and time.monotonic() < deadline:
        time.sleep(0.05)
    after = hub.tree("alice")
    assert after.version != before.version
    assert "def extra_1(" in after.files["bad.py"]
    assert hub.tree("alice").version == after.version  # stable while nothing changes


def test_idle_servers_stop_and_close_leaves_no_process(make_hub):
    hub = make_hub({"idle": hostile(), "busy": hostile()}, idle_timeout_s=1.0)
    hub.tree("alice")
    idle, busy = pid_of(hub, "idle"), pid_of(hub, "busy")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ok(call(hub, "busy", "echo", {"text": "keep me"}))
        if not alive(idle):
            break
        time.sleep(0.2)
    assert not alive(idle), "the idle server still runs"
    assert alive(busy)
    assert hub.statuses()[0].state == "stopped"
    assert pid_of(hub, "idle") != idle  # started again on the next call
    again = hub.statuses()[0].pid
    hub.close()
    assert not alive(busy)
    assert not alive(again)
    after = call(hub, "busy", "echo", {"text": "x"})
    assert not after.ok
    assert "shut down" in after.error
