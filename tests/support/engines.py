"""Executor clients on each engine, for the tiers that run the same cases on both.

The integration tier's `executor` / `make_executor` (tests/integration/conftest.py) are
parametrised over `ENGINES`: "docker" is the local daemon; "kubernetes" is the Kubernetes engine
against the API double in tests/kubernetes, whose pods are hardened Docker containers, reached
over TLS like a real API server, or, when EXECUTOR_ENGINE=kubernetes is set (`make test-k8s`),
the cluster KUBECONFIG names, in EXECUTOR_K8S_NAMESPACE, with the baked image
EXECUTOR_IMAGE_NAME. The session fixtures here (`tls_files`, `baked_image`, `exec_cluster`) are
registered by tests/conftest.py, so both tiers share one double and one baked image.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

import docker
from executor import DockerExecutionClient
from settings import PROJECT_ROOT, ExecutorSettings, load_settings

ENGINES = ("docker", "kubernetes")
ON_CLUSTER = os.environ.get("EXECUTOR_ENGINE") == "kubernetes"
NAMESPACE = "mce-test"
RBAC = PROJECT_ROOT / "deploy" / "kubernetes" / "rbac.yaml"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Tests of other behaviour run without the warm pool and per-user limits; their own tests turn
# them on explicitly.
NO_EXTRAS = {
    "pool_size": 0,
    "max_executions_per_minute": 0,
    "max_concurrent_executions": 0,
    "max_live_sessions": 0,
}


def configuration_for(api: Any, tmp: Path, ca: Path | None = None) -> Any:
    """A client configuration made the way a user's is: from a kubeconfig file."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    path = api.kubeconfig(tmp / f"kubeconfig-{uuid.uuid4().hex[:6]}", namespace=NAMESPACE, ca=ca)
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(path), client_configuration=configuration)
    return configuration


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
    from executor.image import bake_layer

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
def exec_cluster(baked_image, tls_files, tmp_path_factory) -> Iterator[Any]:
    """A client configuration for the exec tier (the double over TLS, or the real cluster)."""
    from executor.engines.kubernetes import load_configuration

    if ON_CLUSTER:
        yield load_configuration(os.environ.get("EXECUTOR_K8S_CONTEXT", ""))
        return
    from executor.engines.docker import DockerEngine
    from tests.kubernetes.docker_pods import DockerPods
    from tests.kubernetes.fake_apiserver import FakeKubeApi, role_rules

    ca, cert, key = tls_files
    label = f"mce-k8s-test-{uuid.uuid4().hex[:8]}"
    api = FakeKubeApi(backend=DockerPods(DockerEngine(), label), rbac=role_rules(RBAC))
    api.tls = (cert, key)
    api.start()
    yield configuration_for(api, tmp_path_factory.mktemp("kube"), ca=ca)
    api.stop()


def cluster_settings(baked_image: str, app_label: str, **settings: Any) -> dict[str, Any]:
    """Executor settings for one client: the cluster's own (from the environment) on a real
    cluster, the double's namespace otherwise."""
    base = load_settings().executor if ON_CLUSTER else ExecutorSettings(k8s_namespace=NAMESPACE)
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    values.update(image_name=baked_image, app_label=app_label, **NO_EXTRAS)
    values.update(settings)
    return values


CLIENT_ONLY = ("tool_bridge", "tool_call_timeout_s")  # the client's wiring, not its settings


def kubernetes_client(
    configuration: Any, baked_image: str, app_label: str, state_dir: Path, **settings: Any
) -> DockerExecutionClient:
    """A client on the Kubernetes engine with its own app label (close it with close_client)."""
    from executor.engines.kubernetes import KubernetesEngine

    settings.setdefault("state_dir", state_dir)  # never the project's data/
    settings.setdefault("audit_log", state_dir / f"audit-{app_label}.jsonl")
    wiring = {k: settings.pop(k) for k in CLIENT_ONLY if k in settings}  # not settings
    spec = ExecutorSettings(**cluster_settings(baked_image, app_label, **settings))
    engine = KubernetesEngine(spec, configuration=configuration)
    return DockerExecutionClient.from_settings(spec, sandbox_engine=engine, **wiring)


def docker_client_for(app_label: str, state_dir: Path, **settings: Any) -> DockerExecutionClient:
    """A client on the local Docker daemon with its own app label (close it with close_client)."""
    settings.setdefault("app_label", app_label)
    for name, value in NO_EXTRAS.items():
        settings.setdefault(name, value)
    settings.setdefault("state_dir", state_dir)
    settings.setdefault("audit_log", state_dir / f"audit-{settings['app_label']}.jsonl")
    return DockerExecutionClient(**settings)


def close_client(client: DockerExecutionClient, *, engine: bool = False) -> None:
    """Remove everything a test client made, then let go of its threads and connections (a
    run's worth of clients left open held over a thousand sockets). `engine=True` closes the
    engine too: one kubernetes_client made for it, so not the client's own to close."""
    client.cleanup_all(remove_volumes=True)
    asyncio.run(client.aclose(remove_containers=False))
    if engine:
        client.engine.close()
