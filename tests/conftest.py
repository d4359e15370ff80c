"""Shared fixtures. Docker tests never skip in CI (CI=true): no daemon or image fails them."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from tests
# LiteLLM fetches its model cost map from GitHub on import (with retries) unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import docker.errors
import pytest

import docker
from executor import DockerExecutionClient
from executor.image import image_status
from settings import PROJECT_ROOT, ExecutorSettings
from tests.daemons import DATA_ROOT, SecondDockerd, TlsFiles

# User ids a hostile caller might use; each must map to its own safe container.
HOSTILE_IDS = [
    "../x",
    "a b",
    "a;rm -rf /",
    "x" * 300,
    "ünïcødé 🚀",
    "",
    "$(id)",
    "CAPS/..\\",
    "\ud800",
]

# Tests of other behaviour run without the warm pool and per-user limits; their own tests turn
# them on explicitly.
NO_EXTRAS = {
    "pool_size": 0,
    "max_executions_per_minute": 0,
    "max_concurrent_executions": 0,
    "max_live_sessions": 0,
}

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PROJECT_DATA = PROJECT_ROOT / "data"


def _data_snapshot() -> dict[str, float]:
    if not PROJECT_DATA.exists():
        return {}
    return {str(p): p.stat().st_mtime for p in PROJECT_DATA.rglob("*")}


@pytest.fixture(scope="session", autouse=True)
def project_data_untouched():
    """No test may write into the project's own data/ (a developer's chats and audit log)."""
    before = _data_snapshot()
    yield
    after = _data_snapshot()
    assert after == before, f"tests wrote into {PROJECT_DATA}: {sorted(set(after) ^ set(before))}"


def _docker_problem() -> str | None:
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except docker.errors.DockerException as exc:
        return f"no Docker daemon ({exc})"
    if image_status(client, ExecutorSettings().image_name) == "missing":
        return "sandbox image missing: run `make image`"
    return None


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    problem = _docker_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"Docker tests must run in CI: {problem}")
        pytest.skip(problem)
    return docker.from_env(timeout=120)


@pytest.fixture(scope="session")
def app_label() -> str:
    return f"mce-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("executor-state")


@pytest.fixture(scope="session")
def executor(docker_client, app_label, state_dir):
    """One client for the whole run; tests use distinct user_ids. Removes everything at the end."""
    client = DockerExecutionClient(
        app_label=app_label, state_dir=state_dir, audit_log=state_dir / "audit.jsonl", **NO_EXTRAS
    )
    yield client
    close_client(client)


@pytest.fixture
def make_executor(docker_client, app_label, state_dir):
    """Factory for clients with other settings (own label each); all removed at test end."""
    made: list[DockerExecutionClient] = []

    def make(**settings) -> DockerExecutionClient:
        settings.setdefault("app_label", f"{app_label}-{len(made)}")
        for name, value in NO_EXTRAS.items():
            settings.setdefault(name, value)
        settings.setdefault("state_dir", state_dir)
        settings.setdefault("audit_log", state_dir / f"audit-{uuid.uuid4().hex[:8]}.jsonl")
        client = DockerExecutionClient(**settings)
        made.append(client)
        return client

    yield make
    for client in made:
        close_client(client)


def close_client(client: DockerExecutionClient) -> None:
    """Remove everything a test client made, then let go of its threads and connections (a
    run's worth of clients left open held over a thousand sockets)."""
    client.cleanup_all(remove_volumes=True)
    asyncio.run(client.aclose(remove_containers=False))


@pytest.fixture
def user_id(request) -> str:
    """A fresh session id per test."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}"


def app_containers(docker_client: docker.DockerClient, label: str) -> list:
    return docker_client.containers.list(  # containers going away meanwhile are left out
        all=True, filters={"label": f"mcp-code-executor.app={label}"}, ignore_removed=True
    )


def _runsc_wrapper() -> dict[str, str]:
    """gVisor as a runtime, where Debian's runsc is installed: the wrapper adds --network=none
    (the bare binary refuses to run in the host's network namespace here)."""
    runsc = shutil.which("runsc")
    if runsc is None:
        return {}
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    wrapper = DATA_ROOT / "runsc-nonet"
    wrapper.write_text(f'#!/bin/sh\nexec {runsc} --network=none "$@"\n')
    wrapper.chmod(0o755)
    return {"runsc": str(wrapper)}


@pytest.fixture(scope="session")
def second_dockerd(docker_client, tmp_path_factory):
    """A second Docker daemon of the tests' own: TCP with TLS (certificates made here) for the
    remote tier, its unix socket for the daemon-down test, gVisor registered for the gVisor tier.
    Stopped by its pid at the end; the main daemon is never touched."""
    if shutil.which("dockerd") is None or shutil.which("openssl") is None:
        message = "dockerd and openssl are needed for a second daemon"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    tls = TlsFiles(tmp_path_factory.mktemp("docker-tls")).make()
    daemon = SecondDockerd(name="second", tls=tls, runtimes=_runsc_wrapper()).start()
    try:
        daemon.prune()
        daemon.load_image(ExecutorSettings().image_name)
        yield daemon
    finally:
        daemon.stop()
