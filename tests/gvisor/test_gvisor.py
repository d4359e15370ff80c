"""gVisor (Debian's runsc, EXECUTOR_RUNTIME=runsc) as a tested option: the sandbox's kernel is
gVisor's, and the hardening, timeout, file and runner cases hold under it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from executor import DockerExecutionClient, PathNotAllowedError
from executor.engines.docker import DockerEngine
from tests.conftest import IN_CI, NO_EXTRAS
from tests.egress.support import EchoPeer, IndexServer, build_wheel, proxy_script, write_index

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
async def make_sandboxed(gvisor, app_label, tmp_path):
    """Clients whose sandboxes run under runsc on the tests' second daemon."""
    made = []

    def make(**settings) -> DockerExecutionClient:
        client = DockerExecutionClient(
            sandbox_engine=DockerEngine(environ={"DOCKER_HOST": gvisor.unix_host}),
            app_label=f"{app_label}-gvisor-{len(made)}",
            runtime="runsc",
            state_dir=tmp_path,
            audit_log=tmp_path / f"audit-{len(made)}.jsonl",
            **{**NO_EXTRAS, **settings},
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.cleanup_all(remove_volumes=True)
        await client.aclose(remove_containers=False)


@pytest.fixture
def sandboxed(make_sandboxed):
    return make_sandboxed()


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


async def test_code_mode_calls_cross_under_gvisor(make_sandboxed, time_server_hub):
    client = make_sandboxed(tool_bridge=time_server_hub)
    code = "from tools.mcp import time\ntime.get_current_time(timezone='UTC')['timezone']"
    result = await client.run_python("g", code)
    assert result.stdout.strip() == "'UTC'", result.stderr
    assert [c.ok for c in result.tool_calls] == [True]


async def test_egress_through_the_proxy_under_gvisor(make_sandboxed, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    write_index(tmp_path / "site", [build_wheel(wheels, "gvisorpkg", source="VALUE = 7\n")])
    with IndexServer(tmp_path / "site") as index, EchoPeer() as refused:
        client = make_sandboxed(egress_allow=f"127.0.0.1:{index.port}")
        pip = (
            'NO_PROXY= no_proxy= pip install --proxy "$HTTP_PROXY" --retries 0 '
            f"--index-url {index.index_url} gvisorpkg && python3 -c 'import gvisorpkg; "
            "print(gvisorpkg.VALUE)'"
        )
        installed = await client.run("g", pip, timeout=120)
        assert installed.stdout.strip().endswith("7"), installed.stderr
        probe = (
            "s = proxy()\n"
            "s.sendall(f'CONNECT 127.0.0.1:{sys.argv[1]} HTTP/1.1\\r\\n\\r\\n'.encode())\n"
            "print(s.recv(100).split(b'\\r\\n')[0].decode())\n"
        )
        await client.write_file("g", "probe.py", proxy_script(probe))
        answer = await client.run("g", f"python3 probe.py {refused.port}")
        assert answer.stdout.startswith("HTTP/1.1 403"), answer.stdout + answer.stderr
        assert refused.accepted == 0


@pytest.fixture
def time_server_hub(tmp_path):
    from code_mode import McpHub, parse_servers
    from tests.code_mode.conftest import installed

    servers = {"mcpServers": {"time": {"command": installed("py/bin/mcp-server-time")}}}
    config = parse_servers(json.dumps(servers), Path("gvisor.json"), {}, ())
    hub = McpHub(config, catalog_path=tmp_path / "catalog.json")
    yield hub
    hub.close()
