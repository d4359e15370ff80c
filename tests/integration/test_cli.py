"""`doctor` and `cleanup`, run as a person runs them (a subprocess of the CLI)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from executor import DockerExecutionClient
from settings import PROJECT_ROOT
from tests.conftest import app_containers

pytestmark = pytest.mark.docker


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "frontend.cli", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


@pytest.fixture
def cli_env(app_label, tmp_path) -> dict[str, str]:
    return {
        "EXECUTOR_APP_LABEL": f"{app_label}-cli",
        "APP_DATA_DIR": str(tmp_path / "data"),
        "EXECUTOR_STATE_DIR": str(tmp_path / "state"),
        "EXECUTOR_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
    }


def test_doctor_passes_on_a_working_install(docker_client, cli_env):
    result = run_cli("doctor", env=cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok]   Docker" in result.stdout
    assert "sandbox image mcp-code-executor:latest is current" in result.stdout
    assert "data directory" in result.stdout
    assert "model:" in result.stdout


def test_doctor_says_what_to_fix(docker_client, cli_env):
    result = run_cli("doctor", env={**cli_env, "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.returncode == 1
    assert "[FAIL] Docker is not reachable" in result.stdout
    assert "fix: start the daemon" in result.stdout
    result = run_cli(
        "doctor",
        env={
            **cli_env,
            "EXECUTOR_IMAGE_NAME": "mcp-code-executor:nope",
            "APP_MODEL": "gemini-2.5-flash",
            "GOOGLE_API_KEY": "",
            "GEMINI_API_KEY": "",
        },
    )
    assert result.returncode == 1
    assert "is missing\n       fix: run `make image`" in result.stdout
    assert "no GOOGLE_API_KEY" in result.stdout


async def test_cleanup_removes_containers_and_asks_before_volumes(docker_client, cli_env, tmp_path):
    client = DockerExecutionClient(
        app_label=cli_env["EXECUTOR_APP_LABEL"],
        pool_size=1,
        state_dir=tmp_path / "state",
        audit_log=tmp_path / "audit.jsonl",
    )
    try:
        await client.execute_bash("one", "true")
        await client.execute_bash("two", "true")
        label = cli_env["EXECUTOR_APP_LABEL"]
        deadline = time.monotonic() + 60

        def settled() -> bool:  # two sessions and the pool at its target (it learns: 2)
            status = client.pool_status()
            count = len(app_containers(docker_client, label))
            return status.ready == status.target and count == 2 + status.ready

        while not settled():
            assert time.monotonic() < deadline, "the pool did not settle"
            await asyncio.sleep(0.2)
        result = run_cli("cleanup", env=cli_env)  # no terminal: volumes are kept
        assert result.returncode == 0, result.stderr
        assert app_containers(docker_client, label) == []
        assert "pass --yes" in result.stdout
        assert "kept image(s): mcp-code-executor:latest" in result.stdout  # said, not removed
        volumes = docker_client.volumes.list(filters={"label": f"mcp-code-executor.app={label}"})
        assert len(volumes) >= 2
        result = run_cli("cleanup", "--yes", env=cli_env)
        assert result.returncode == 0, result.stderr
        assert docker_client.volumes.list(filters={"label": f"mcp-code-executor.app={label}"}) == []
    finally:
        await client.aclose(remove_containers=False)
        client.cleanup_all(remove_volumes=True)
