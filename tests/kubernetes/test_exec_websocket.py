"""What is particular to Kubernetes, through the official client's exec websocket: the pod's
PID 1, a runner killed from outside, the network, v4-only API servers,
a pod that stops reading, and pods deleted or ended under a session."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from executor._exec import CappedBuffer, StreamEnd, pump
from executor.engines.base import ChannelClosed
from executor.engines.docker import DockerEngine

from .conftest import ON_CLUSTER, RBAC, configuration_for, make_engine
from .docker_pods import DockerPods
from .fake_apiserver import V4, FakeKubeApi, role_rules
from .test_engine_api import session

pytestmark = pytest.mark.docker


async def pod_of(executor, user_id) -> str:
    await executor.execute_bash(user_id, "true")
    return (await executor.sandbox_info(user_id)).container_name


async def test_pid_1_reaps_orphans_and_the_sandbox_user_cannot_kill_it(make_executor, user_id):
    client = make_executor(use_runner=False)  # orphans of plain execs go to PID 1
    _, out, err = await client.execute_bash(
        user_id,
        "sh -c 'sleep 0.2 &'; sleep 1; ps -eo stat=,comm= | grep '^Z' || echo no-zombies;"
        "kill -9 1; kill -STOP 1; sleep 0.2; ps -o stat=,comm= -p 1; cat /proc/1/environ",
    )
    lines = out.split("\n")
    assert lines[0] == "no-zombies", out
    assert lines[1].split()[1] == "python3", out  # alive
    assert not lines[1].startswith("T"), out  # and not stopped
    assert "Permission denied" in err  # not dumpable: its /proc entries are root's


async def test_a_runner_killed_from_outside_is_restarted(executor, user_id):
    pod = await pod_of(executor, user_id)
    executor.engine.exec_detached(pod, ["pkill", "-9", "-f", "sandbox-runner"])
    result = await executor.run(user_id, "echo fine")
    assert (result.exit_code, result.stdout, result.runner) == (0, "fine\n", True)
    assert "it was restarted" in result.stderr


async def test_nothing_inside_reaches_the_network(executor, user_id):
    script = (
        "import socket\n"
        "for host, port in (('1.1.1.1', 53), ('kubernetes.default.svc', 443)):\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=3)\n"
        "        print('CONNECTED', host)\n"
        "    except OSError as e:\n"
        "        print('blocked', host)\n"
    )
    result = await executor.run_python(user_id, script, timeout=20)
    assert "CONNECTED" not in result.stdout
    assert result.stdout.count("blocked") == 2
    env = (await executor.run(user_id, "env")).stdout
    assert "KUBERNETES_SERVICE_HOST" not in env  # no service links, no API address
    assert "/var/run/secrets/kubernetes.io" not in (await executor.run(user_id, "mount")).stdout


async def test_a_deleted_pod_is_made_again_on_the_same_workspace(executor, user_id):
    await executor.write_file(user_id, "keep.txt", "kept")
    pod = await pod_of(executor, user_id)
    await asyncio.to_thread(executor.engine.remove, pod)  # e.g. a node drained
    result = await executor.run(user_id, "cat keep.txt")
    assert (result.exit_code, result.stdout) == (0, "kept")


async def test_idle_stop_deletes_the_pod_and_the_next_call_resumes_with_files(
    make_executor, user_id
):
    client = make_executor()
    await client.write_file(user_id, "notes.txt", "still here")
    pod = await pod_of(client, user_id)
    await client.stop(user_id)
    assert client.engine.inspect(pod) is None
    result = await client.run(user_id, "cat notes.txt")
    assert (result.exit_code, result.stdout) == (0, "still here")


async def test_a_pool_member_is_claimed_with_its_runner_ready(make_executor, user_id):
    client = make_executor(pool_size=1, pool_check_interval_s=0.5)
    await client.start()
    deadline = time.monotonic() + 30
    while client.pool_status().ready < 1 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    started = time.monotonic()
    result = await client.run(user_id, "echo first")
    assert (result.stdout, result.runner) == ("first\n", True)
    assert time.monotonic() - started < 1.0  # no pod start, no runner start
    info = await client.sandbox_info(user_id)
    assert "-pool-" in info.container_name
    [pod] = client.engine.list(
        {"mcp-code-executor.app": client.settings.app_label, "mcp-code-executor.user": user_id}
    )
    assert pod.labels.get("mcp-code-executor.pool") is None


@pytest.mark.skipif(ON_CLUSTER, reason="needs an API server that speaks only v4")
async def test_a_v4_only_api_server_runs_the_runner_and_plain_commands(
    baked_image, tmp_path, app_label
):
    api = FakeKubeApi(
        backend=DockerPods(DockerEngine(), f"{app_label}-v4"),
        rbac=role_rules(RBAC),
        protocols=(V4,),
    ).start()
    engine = make_engine(configuration_for(api, tmp_path), image_name=baked_image)
    ref = None
    try:
        ref = engine.create(session("v4/user", image_name=baked_image))
        channel = engine.open_exec(
            ref, ["bash", "-c", "echo out; echo err >&2; exit 7"], stdin=False
        )
        out, err = CappedBuffer(1000), CappedBuffer(1000)
        assert (
            pump(channel, deadline=time.monotonic() + 10, stdout=out, stderr=err) is StreamEnd.EOF
        )
        assert (bytes(out.data), bytes(err.data), channel.exit_code()) == (b"out\n", b"err\n", 7)
        assert channel.close_stdin() is False  # v4 cannot half-close; the runner never needs to
        channel.close()
        assert ("pods/exec", "create") in api.used  # the verb the Role grants for exec
    finally:
        if ref:
            engine.remove(ref)
        api.stop()


@pytest.mark.skipif(ON_CLUSTER, reason="fills a pod's stdin on purpose")
async def test_a_pod_that_stops_reading_never_blocks_the_host_thread(
    baked_image, tmp_path, app_label
):
    api = FakeKubeApi(backend=DockerPods(DockerEngine(), f"{app_label}-stall")).start()
    engine = make_engine(configuration_for(api, tmp_path), image_name=baked_image)
    ref = None
    try:
        ref = engine.create(session("stall/user", image_name=baked_image))
        channel = engine.open_exec(ref, ["sleep", "60"], stdin=True)  # never reads its stdin
        accepted, slowest, stalled_since, timed_out = 0, 0.0, None, ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _, writable = channel.wait(0.5, write=True)
            if not writable:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 2:
                    break  # the transport says "not now": the caller's deadline decides
                continue
            stalled_since = None
            started = time.monotonic()
            try:
                accepted += channel.send(b"x" * 65536)
            except ChannelClosed as exc:  # a frame that did not fit within the socket timeout
                timed_out = str(exc)
                break
            finally:
                slowest = max(slowest, time.monotonic() - started)
        assert time.monotonic() < deadline
        assert slowest < 6  # one write waits at most the socket timeout (5 s)
        assert 0 < accepted < 256 << 20
        if not timed_out:  # the transport said "not now"; a write anyway is bounded too
            started = time.monotonic()
            with pytest.raises(ChannelClosed, match="stopped reading"):
                channel.send(b"x" * 32768)
            assert 4 < time.monotonic() - started < 7
        else:
            assert "stopped reading" in timed_out
        started = time.monotonic()
        channel.close()
        assert time.monotonic() - started < 2
    finally:
        if ref:
            engine.remove(ref)
        api.stop()


def test_execs_and_api_calls_from_many_threads_do_not_cross(executor, user_id):
    """`kubernetes.stream.stream` swaps `call_api` on the ApiClient it is given while it
    connects: on a shared client, a concurrent REST call would go out as a websocket (and two
    concurrent execs can leave the swap in place for good)."""
    asyncio.run(executor.execute_bash(user_id, "true"))
    engine = executor.engine
    pod = asyncio.run(executor.sandbox_info(user_id)).container_name
    failures: list[BaseException] = []

    def execs() -> None:
        for _ in range(8):
            channel = engine.open_exec(pod, ["echo", "ok"], stdin=False)
            out, err = CappedBuffer(100), CappedBuffer(100)
            pump(channel, deadline=time.monotonic() + 10, stdout=out, stderr=err)
            channel.close()
            assert bytes(out.data) == b"ok\n"

    def reads() -> None:
        for _ in range(40):
            assert engine.inspect(pod).running

    def guarded(fn) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(fn,)) for fn in (execs, reads) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert engine.inspect(pod).running  # the shared client still speaks REST
