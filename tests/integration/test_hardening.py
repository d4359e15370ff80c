"""The container's hardening really applies: checked from inside and in Docker's own view."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker


async def test_no_capabilities_no_new_privileges_and_non_root(executor, user_id):
    _code, out, _ = await executor.execute_bash(
        user_id,
        "id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status",
    )
    lines = dict(line.split(":\t") for line in out.splitlines()[1:])
    assert out.splitlines()[0] == "1000"
    assert lines["CapEff"] == lines["CapBnd"] == "0000000000000000"
    assert lines["NoNewPrivs"] == "1"
    assert lines["Seccomp"] == "2"


@pytest.mark.docker_only(
    "lo as the only interface (Kubernetes: the deny-all NetworkPolicy, test_engine_api.py)"
)
async def test_no_network(executor, user_id):
    script = (
        "import socket\ntry:\n socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
        " print('CONNECTED')\n"
        "except OSError as e:\n print('blocked', e.errno)"
    )
    _code, out, _ = await executor.execute_bash(
        user_id, f'python3 -c "{script}"; ls /sys/class/net'
    )
    assert "CONNECTED" not in out
    assert out.splitlines()[-1] == "lo"


async def test_root_filesystem_is_read_only_and_no_docker_socket(executor, user_id):
    _code, out, _ = await executor.execute_bash(
        user_id,
        "touch /etc/x 2>&1; touch /usr/local/bin/x 2>&1; ls /var/run/docker.sock 2>&1; echo ok",
    )
    assert out.count("Read-only file system") == 2
    assert "No such file" in out


@pytest.mark.docker_only("docker-init as PID 1 (Kubernetes: test_exec_websocket.py, PID 1)")
async def test_main_process_cannot_be_killed_or_written_by_the_sandbox_user(executor, user_id):
    code, out, err = await executor.execute_bash(
        user_id,
        "kill -9 1; kill -9 $(pgrep -x sleep | head -1); echo x > /proc/1/fd/1; true",
    )
    assert err.count("Operation not permitted") == 2
    assert "Permission denied" in err
    code, out, _ = await executor.execute_bash(user_id, "echo still up")
    assert (code, out) == (0, "still up\n")


async def test_host_environment_is_not_visible_inside(executor, user_id, monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", "host-secret-canary-123")
    code, out, _ = await executor.execute_bash(
        user_id + "-env", "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'"
    )
    assert code == 0
    assert "host-secret-canary-123" not in out
    assert "HOME=/home/coderunner" in out


async def test_memory_limit_kills_with_a_clear_message(make_executor, user_id):
    client = make_executor(memory_limit_bytes=256 << 20, tmp_size_bytes=32 << 20)
    code, _, err = await client.execute_bash(
        user_id, "python3 -c 'x = bytearray(1 << 30); print(len(x))'"
    )
    assert code == 137
    assert "ran out of memory" in err
    assert (await client.execute_bash(user_id, "echo ok"))[:2] == (0, "ok\n")


@pytest.mark.docker_only("Docker's own view of the container")
async def test_docker_sees_the_hardened_configuration(executor, user_id, docker_client):
    await executor.execute_bash(user_id, "true")
    from executor.manager import container_name

    host = docker_client.api.inspect_container(container_name(executor.settings.app_label, user_id))
    config = host["HostConfig"]
    spec = executor.settings
    assert config["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in config["SecurityOpt"]
    assert config["ReadonlyRootfs"] is True
    assert config["NetworkMode"] == "none"
    assert config["Init"] is True
    assert config["PidsLimit"] == spec.pids_limit
    assert config["Memory"] == config["MemorySwap"] == spec.memory_limit_bytes
    assert config["NanoCpus"] == int(spec.cpu_limit * 1e9)
    assert config["LogConfig"]["Type"] == "none"
    assert config["Privileged"] is False
    assert "/var/run/docker.sock" not in str(host["Mounts"])
    assert host["Config"]["User"] == "0:0"
    tmpfs_total = sum(
        int(opts.split("size=")[1].split(",")[0]) for opts in config["Tmpfs"].values()
    )
    assert tmpfs_total + config["ShmSize"] < config["Memory"] / 2
