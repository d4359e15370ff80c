"""Fixtures of the Kubernetes tiers.

Every test here is marked `kubernetes`. The API tier runs the engine against the in-memory API
double (no Docker). The exec tier (test_exec_websocket.py: what is particular to Kubernetes)
runs clients on the Kubernetes engine against the double backed by the local Docker daemon, or a
real cluster under `make test-k8s`; the session fixtures for that (`exec_cluster`, `baked_image`)
are in tests/support/engines.py. The executor's own integration cases run on this engine too, by
construction: tests/integration parametrises its fixtures over both engines.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor import DockerExecutionClient
from executor.engines.kubernetes import KubernetesEngine
from settings import ExecutorSettings
from tests.support.engines import (
    NAMESPACE,
    ON_CLUSTER,
    RBAC,
    close_client,
    configuration_for,
    kubernetes_client,
)

from .fake_apiserver import FakeKubeApi, role_rules

__all__ = ["NAMESPACE", "ON_CLUSTER", "RBAC", "configuration_for", "make_engine"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.kubernetes)


def make_engine(configuration, **settings) -> KubernetesEngine:
    settings.setdefault("k8s_namespace", NAMESPACE)
    return KubernetesEngine(ExecutorSettings(**settings), configuration=configuration)


# -- the API tier: the double alone ------------------------------------------------------


@pytest.fixture
def double(tmp_path) -> Iterator[FakeKubeApi]:
    """The API double, enforcing the Role of deploy/kubernetes/rbac.yaml."""
    api = FakeKubeApi(rbac=role_rules(RBAC), start_delay_s=0.05, terminate_delay_s=0.1).start()
    yield api
    api.stop()


@pytest.fixture
def engine_of(double, tmp_path):
    """engine_of(**settings): a new engine (a new app process) on the double."""
    made: list[KubernetesEngine] = []

    def make(**settings) -> KubernetesEngine:
        engine = make_engine(configuration_for(double, tmp_path), **settings)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


# -- the exec tier: Docker-backed double over TLS, or a real cluster ----------------------


@pytest.fixture
def make_executor(exec_cluster, baked_image, app_label, state_dir):
    """Clients on the Kubernetes engine (own app label each); everything removed at test end."""
    made: list[DockerExecutionClient] = []

    def make(**settings) -> DockerExecutionClient:
        label = f"{app_label}-k{uuid.uuid4().hex[:6]}"
        client = kubernetes_client(exec_cluster, baked_image, label, state_dir, **settings)
        made.append(client)
        return client

    yield make
    for client in made:
        close_client(client, engine=True)


@pytest.fixture
def executor(make_executor):
    """A client on the Kubernetes engine, one per test."""
    return make_executor()
