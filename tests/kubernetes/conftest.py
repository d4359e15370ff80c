"""Fixtures of the Kubernetes tiers.

Every test here is marked `kubernetes`. The API tier runs the engine against the in-memory API
double (no Docker). The exec tier runs the executor's own integration cases through
`DockerExecutionClient(sandbox_engine=KubernetesEngine(...))`: against the double backed by the
local Docker daemon (TLS, like a real API server), or, when EXECUTOR_ENGINE=kubernetes is set
(`make test-k8s`), against the cluster KUBECONFIG names, in EXECUTOR_K8S_NAMESPACE, with the
baked image EXECUTOR_IMAGE_NAME. Each test's client has its own app label and removes its pods
and PVCs when the test ends.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

import docker
from executor import DockerExecutionClient
from executor.engines.docker import DockerEngine
from executor.engines.kubernetes import KubernetesEngine, load_configuration
from executor.image import bake_layer
from settings import PROJECT_ROOT, ExecutorSettings, load_settings
from tests.conftest import IN_CI, NO_EXTRAS, close_client

from .docker_pods import DockerPods
from .fake_apiserver import FakeKubeApi, role_rules

ON_CLUSTER = os.environ.get("EXECUTOR_ENGINE") == "kubernetes"
NAMESPACE = "mce-test"
RBAC = PROJECT_ROOT / "deploy" / "kubernetes" / "rbac.yaml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.kubernetes)


def configuration_for(api: FakeKubeApi, tmp: Path, ca: Path | None = None) -> k8s.Configuration:
    """A client configuration made the way a user's is: from a kubeconfig file."""
    path = api.kubeconfig(tmp / f"kubeconfig-{uuid.uuid4().hex[:6]}", namespace=NAMESPACE, ca=ca)
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(path), client_configuration=configuration)
    return configuration


def make_engine(configuration: k8s.Configuration, **settings) -> KubernetesEngine:
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


def _docker_problem() -> str | None:
    try:
        client = docker.from_env(timeout=10)
        client.ping()
        client.images.get(ExecutorSettings().image_name)
    except docker.errors.DockerException as exc:
        return f"needs Docker and the sandbox image ({exc})"
    return None


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(ca, cert, key): a self-signed CA and a certificate for 127.0.0.1 it signed."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
    )
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=double-ca",
        "-keyout", str(ca_key), "-out", str(ca),
    )  # fmt: skip
    run(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(key), "-out", str(csr),
    )  # fmt: skip
    run(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert),
    )  # fmt: skip
    return ca, cert, key


@pytest.fixture(scope="session")
def baked_image() -> Iterator[str]:
    """The sandbox image with /tools and /skills baked in, as a cluster runs it."""
    if ON_CLUSTER:
        yield load_settings().executor.image_name
        return
    problem = _docker_problem()
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    client = docker.from_env(timeout=600)
    tag = f"mce-k8s-test-{uuid.uuid4().hex[:8]}:baked"
    base = client.images.get(ExecutorSettings().image_name).id
    bake_layer(client, base, tag, PROJECT_ROOT / "tools", PROJECT_ROOT / "skills")
    yield tag
    client.images.remove(tag, force=True)


@pytest.fixture(scope="session")
def exec_cluster(baked_image, tls_files, tmp_path_factory) -> Iterator[k8s.Configuration]:
    """A client configuration for the exec tier (the double over TLS, or the real cluster)."""
    if ON_CLUSTER:
        yield load_configuration(os.environ.get("EXECUTOR_K8S_CONTEXT", ""))
        return
    ca, cert, key = tls_files
    label = f"mce-k8s-test-{uuid.uuid4().hex[:8]}"
    api = FakeKubeApi(backend=DockerPods(DockerEngine(), label), rbac=role_rules(RBAC))
    api.tls = (cert, key)
    api.start()
    yield configuration_for(api, tmp_path_factory.mktemp("kube"), ca=ca)
    api.stop()


def cluster_settings(baked_image: str, app_label: str, **settings) -> dict:
    """Executor settings for one test's client: the cluster's own (from the environment) on a
    real cluster, the double's namespace otherwise."""
    base = load_settings().executor if ON_CLUSTER else ExecutorSettings(k8s_namespace=NAMESPACE)
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    values.update(image_name=baked_image, app_label=app_label, **NO_EXTRAS)
    values.update(settings)
    return values


@pytest.fixture
def make_executor(exec_cluster, baked_image, app_label, state_dir):
    """Clients on the Kubernetes engine (own app label each); everything removed at test end."""
    made: list[DockerExecutionClient] = []

    def make(**settings) -> DockerExecutionClient:
        label = f"{app_label}-k{uuid.uuid4().hex[:6]}"
        settings.setdefault("state_dir", state_dir)  # never the project's data/
        settings.setdefault("audit_log", state_dir / f"audit-{label}.jsonl")
        spec = ExecutorSettings(**cluster_settings(baked_image, label, **settings))
        engine = KubernetesEngine(spec, configuration=exec_cluster)
        client = DockerExecutionClient.from_settings(spec, sandbox_engine=engine)
        made.append(client)
        return client

    yield make
    for client in made:
        close_client(client)
        client.engine.close()  # made here, so not the client's to close


@pytest.fixture
def executor(make_executor):
    """The integration cases' `executor`, on the Kubernetes engine, one per test."""
    return make_executor()
