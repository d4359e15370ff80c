"""Cases that run on every engine, by construction: a conftest that imports these (the
integration, egress and code-mode tiers) makes each of its tests that takes `executor` or
`make_executor` run once per engine in
`tests.support.engines.ENGINES`: `[docker]` on the local daemon, `[kubernetes]` on the
Kubernetes engine (against the API double whose pods are hardened Docker containers, or a real
cluster under `make test-k8s`; those variants are marked `kubernetes`). A case that looks at what
only Docker shows (its API's view of a container, a per-container pids limit, loop-mounted
quotas ...) says so with `@pytest.mark.docker_only("why")`; asking for `docker_client` without
that marker is a collection error, so no case is Docker-only by accident.
"""

from __future__ import annotations

import uuid

import pytest

from executor import DockerExecutionClient
from tests.support.engines import ENGINES, close_client, docker_client_for, kubernetes_client

_FIXTURES = {"executor", "make_executor"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not _FIXTURES & set(metafunc.fixturenames):
        return
    only = metafunc.definition.get_closest_marker("docker_only")
    if only is not None and not (only.args and str(only.args[0]).strip()):
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: docker_only needs a reason")
    if only is None and "docker_client" in metafunc.fixturenames:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} asks for docker_client, so it cannot run on every "
            'engine: mark it @pytest.mark.docker_only("why"), or look through the executor'
        )
    engines = ["docker"] if only is not None else list(ENGINES)
    metafunc.parametrize("engine", engines, indirect=True, scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("engine") == "kubernetes":
            item.add_marker(pytest.mark.kubernetes)


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest) -> str:
    """The engine this case runs on (see the module docstring)."""
    return request.param


def _client(request, engine: str, label: str, state_dir, **settings) -> DockerExecutionClient:
    if engine == "docker":
        request.getfixturevalue("docker_client")  # the daemon and image are there (or skip)
        return docker_client_for(label, state_dir, **settings)
    cluster = request.getfixturevalue("exec_cluster")
    image = request.getfixturevalue("baked_image")
    return kubernetes_client(cluster, image, label, state_dir, **settings)


@pytest.fixture(scope="session")
def executor(request, engine, app_label, state_dir):
    """One client per engine for the whole run; tests use distinct user_ids."""
    client = _client(request, engine, f"{app_label}-{engine[0]}", state_dir)
    yield client
    close_client(client, engine=engine != "docker")


@pytest.fixture
def make_executor(request, engine, app_label, state_dir):
    """Factory for clients with other settings, on this case's engine (own label each); all
    removed at test end."""
    made: list[DockerExecutionClient] = []

    def make(**settings) -> DockerExecutionClient:
        label = settings.pop("app_label", None) or f"{app_label}-{uuid.uuid4().hex[:6]}"
        client = _client(request, engine, label, state_dir, **settings)
        made.append(client)
        return client

    yield make
    for client in made:
        close_client(client, engine=engine != "docker")
