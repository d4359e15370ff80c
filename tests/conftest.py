"""Shared fixtures. Docker tests never skip in CI (CI=true): no daemon or image fails them."""

from __future__ import annotations

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
from tests.support.daemons import DATA_ROOT, SecondDockerd, TlsFiles
from tests.support.engines import (  # the Kubernetes exec tier's, shared with tests/integration
    IN_CI,
    NO_EXTRAS,
    baked_image,
    close_client,
    docker_client_for,
    exec_cluster,
    tls_files,
)

__all__ = ["IN_CI", "NO_EXTRAS", "baked_image", "close_client", "exec_cluster", "tls_files"]

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
    """One Docker client for the whole run; tests use distinct user_ids. Removes everything at
    the end. (tests/integration runs its cases on every engine: see its conftest.)"""
    client = docker_client_for(app_label, state_dir, audit_log=state_dir / "audit.jsonl")
    yield client
    close_client(client)


@pytest.fixture
def make_executor(docker_client, app_label, state_dir):
    """Factory for Docker clients with other settings (own label each); all removed at test end."""
    made: list[DockerExecutionClient] = []

    def make(**settings) -> DockerExecutionClient:
        client = docker_client_for(f"{app_label}-{uuid.uuid4().hex[:6]}", state_dir, **settings)
        made.append(client)
        return client

    yield make
    for client in made:
        close_client(client)


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
