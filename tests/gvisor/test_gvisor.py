"""gVisor (Debian's runsc, EXECUTOR_RUNTIME=runsc) as a tested option: the sandbox's kernel is
gVisor's, and the hardening, timeout, file and runner cases hold under it."""

from __future__ import annotations

import shutil

import pytest

from executor import DockerExecutionClient, PathNotAllowedError
from executor.engines.docker import DockerEngine
from tests.conftest import IN_CI, NO_EXTRAS

pytestmark = [pytest.mark.docker, pytest.mark.gvisor]


@pytest.fixture(scope="module")
def gvisor(second_dockerd):
    if "runsc" not in second_dockerd.runtimes:
        message = "runsc (gVisor) is not installed: apt-get install runsc"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return second_dockerd


@pytest.fixture
async def sandboxed(gvisor, app_label, tmp_path):
    client = DockerExecutionClient(
        sandbox_engine=DockerEngine(environ={"DOCKER_HOST": gvisor.unix_host}),
        app_label=f"{app_label}-gvisor",
        runtime="runsc",
        state_dir=tmp_path,
        audit_log=tmp_path / "audit.jsonl",
        **NO_EXTRAS,
    )
    yield client
    client.cleanup_all(remove_volumes=True)
    await client.aclose(remove_containers=False)


async def test_the_sandbox_kernel_is_gvisors(sandboxed):
    result = await sandboxed.run("g", "dmesg 2>/dev/null | head -3; uname -r")
    assert "gVisor" in result.stdout  # gVisor's own kernel log, readable inside
    assert result.runner


async def test_hardening_holds_under_gvisor(sandboxed):
    script = (
        "id -u; awk '$2 == \"/\" {print $4}' /proc/mounts | cut -d, -f1; "
        "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)\" "
        "2>&1 | tail -1"
    )
    result = await sandboxed.run("g", script)
    lines = result.stdout.splitlines()
    assert lines[0] == "1000"
    assert lines[1] == "ro"  # the root file system is read-only
    assert "Error" in lines[2]  # no network


async def test_timeouts_kill_the_tree_and_the_runner_keeps_python_state(sandboxed):
    timed = await sandboxed.run("g", "sleep 300 & sleep 301", timeout=1)
    assert (timed.exit_code, timed.timed_out) == (124, True)
    await sandboxed.run_python("g", "x = 21")
    assert (await sandboxed.run_python("g", "x * 2")).stdout == "42\n"
    left = await sandboxed.run("g", "pgrep -c -u 1000 -x sleep || true")
    assert left.stdout.strip() == "0"


async def test_files_round_trip_and_stay_confined_under_gvisor(sandboxed):
    payload = bytes(range(256)) * 4000
    await sandboxed.upload_file("g", "data/blob.bin", payload)
    assert await sandboxed.download_file("g", "data/blob.bin") == payload
    names = [e.name for e in await sandboxed.list_files("g", "/workspace/data")]
    assert names == ["blob.bin"]  # os.scandir works where coreutils' ls may not (old gVisor)
    with pytest.raises(PathNotAllowedError):
        await sandboxed.write_file("g", "../etc/passwd", "x")


async def test_runsc_is_listed_by_the_daemon(gvisor):
    assert shutil.which("runsc") is not None
    engine = DockerEngine(environ={"DOCKER_HOST": gvisor.unix_host})
    assert "runsc" in engine.runtimes()
