"""The Kubernetes engine's cost over the Docker path, measured in one run on the same machine.

The same warm runner command (`true`), stateful `run_python` and a 1 MiB upload go through:
- the Docker engine: the runner's `docker exec` stream, straight from the daemon;
- the Kubernetes engine: the official client's exec websocket (channel protocol v5) to the
  loopback API double (tests/kubernetes), which bridges each exec frame by frame to a `docker
  exec` in the pod's hardened container: plain HTTP, and TLS as a real API server speaks.
So the Kubernetes rows pay the websocket framing on both ends plus one loopback hop through
the double, and no network. Runs are interleaved so drift hits every path alike.

    .venv/bin/python bench/k8s_exec.py [--runs 300]

Prints a markdown table and saves it to bench/results/k8s_exec.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from bench._common import pct, publish
from executor import DockerExecutionClient
from executor.engines.docker import DockerEngine
from executor.engines.kubernetes import KubernetesEngine
from executor.image import bake_layer
from settings import PROJECT_ROOT, ExecutorSettings
from tests.kubernetes.docker_pods import DockerPods
from tests.kubernetes.fake_apiserver import FakeKubeApi

NAMESPACE = "mce-bench"


def ms(x: float) -> str:
    return f"{x * 1000:.2f}"


def tls_files(folder: Path) -> tuple[Path, Path, Path]:
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.crt", "s.key", "s.csr", "s.crt")
    )
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for args in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ca",
         "-keyout", ca_key, "-out", ca],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key,
         "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
         "-extfile", folder / "ext.cnf", "-out", cert],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
    return ca, cert, key


def kube_client(
    api: FakeKubeApi, image: str, label: str, folder: Path, ca: Path | None
) -> DockerExecutionClient:
    path = api.kubeconfig(folder / f"kubeconfig-{label}", namespace=NAMESPACE, ca=ca)
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(path), client_configuration=configuration)
    spec = ExecutorSettings(**quiet(folder, label), image_name=image, k8s_namespace=NAMESPACE)
    engine = KubernetesEngine(spec, configuration=configuration)
    return DockerExecutionClient.from_settings(spec, sandbox_engine=engine)


def quiet(folder: Path, label: str) -> dict:
    return {
        "app_label": label,
        "pool_size": 0,
        "state_dir": folder,
        "audit_log": folder / f"audit-{label}.jsonl",
        "max_executions_per_minute": 0,
        "max_concurrent_executions": 0,
        "max_live_sessions": 0,
    }


async def main(runs: int) -> str:
    label = f"mce-bench-{uuid.uuid4().hex[:6]}"
    folder = Path(tempfile.mkdtemp(prefix="mce-k8s-bench-"))
    sdk = docker.from_env(timeout=600)
    image = f"{label}:baked"
    base = sdk.images.get(ExecutorSettings().image_name).id
    bake_layer(sdk, base, image, PROJECT_ROOT / "tools", PROJECT_ROOT / "skills")
    ca, cert, key = tls_files(folder)
    apis = {
        "http": FakeKubeApi(backend=DockerPods(DockerEngine(), f"{label}-http")).start(),
        "https": FakeKubeApi(backend=DockerPods(DockerEngine(), f"{label}-tls"), tls=(cert, key)),
    }
    apis["https"].start()
    clients = {
        "docker": DockerExecutionClient.from_settings(
            ExecutorSettings(**quiet(folder, f"{label}-d"), image_name=image)
        ),
        "kubernetes, API over HTTP": kube_client(apis["http"], image, f"{label}-h", folder, None),
        "kubernetes, API over TLS": kube_client(apis["https"], image, f"{label}-t", folder, ca),
    }
    payload = os.urandom(1 << 20)
    workloads = {
        "warm `true` via the runner": lambda c: c.run("w", "true"),
        '`run_python("x + 1")`, stateful': lambda c: c.run_python("w", "x + 1"),
        "upload 1 MiB": lambda c: c.upload_file("w", "blob.bin", payload),
    }
    samples = {(w, c): [] for w in workloads for c in clients}
    try:
        for client in clients.values():  # sessions made and warmed before timing
            await client.run_python("w", "x = 41")
            for call in workloads.values():
                await call(client)
        for _ in range(runs):
            for workload, call in workloads.items():
                for name, client in clients.items():
                    started = time.perf_counter()
                    await call(client)
                    samples[(workload, name)].append(time.perf_counter() - started)
    finally:
        for client in clients.values():
            client.cleanup_all(remove_volumes=True)
        for api in apis.values():
            api.stop()
        sdk.images.remove(image, force=True)

    rows = []
    for workload in workloads:
        base50 = pct(samples[(workload, "docker")], 0.5)
        for name in clients:
            times = samples[(workload, name)]
            delta = pct(times, 0.5) - base50
            rows.append(
                f"| {workload} | {name} | {ms(pct(times, 0.5))} | {ms(pct(times, 0.95))} | "
                f"{'—' if name == 'docker' else f'{delta * 1000:+.2f}'} |"
            )
    info = sdk.version()
    return "\n".join(
        [
            "# Kubernetes engine: exec websocket vs the Docker path",
            "",
            f"{time.strftime('%Y-%m-%d %H:%M')} · Docker {info['Version']} · "
            f"kubernetes client {k8s.__version__} · {platform.machine()} · {os.cpu_count()} cores "
            f"· {runs} warm runs each, interleaved · target: the engine adds at most +1 ms p50",
            "",
            "| workload | engine | p50 ms | p95 ms | p50 vs docker ms |",
            "| --- | --- | ---: | ---: | ---: |",
            *rows,
            "",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    publish(asyncio.run(main(parser.parse_args().runs)), "k8s_exec")
