"""Pods of the API double as hardened Docker containers, made from each pod's own spec.

The executor's Docker engine makes them (`_docker_hardening.container_kwargs`: no capabilities,
no-new-privileges, no network, pids/memory/CPU limits, logs off), then the pod's spec decides
what a pod decides: image, command (PID 1), user, environment, working directory, memory and CPU
limits, the sizes of its memory-backed emptyDirs, a read-only root. A pod has no ulimits, so the
container gets Docker's defaults; whatever the sandbox enforces beyond that, the runner does.
Each PVC is a Docker volume. Everything carries `label` and goes in `cleanup()`.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import docker.errors

from executor._hardening import TOOLS_MCP
from executor.engines._docker_hardening import TOOLS_MCP_TMPFS, container_kwargs
from executor.engines.base import ContainerRequest, ExecChannel
from executor.engines.docker import DockerEngine
from settings import ExecutorSettings

LABEL = "mcp-code-executor.k8s-double"
_UNITS = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}


def quantity(text: str) -> float:
    """A Kubernetes quantity ("1", "500m", "256Mi", "1073741824") as a number."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|k|M|G|Ki|Mi|Gi)?", str(text))
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    number, unit = float(match.group(1)), match.group(2) or ""
    return number / 1000 if unit == "m" else number * _UNITS[unit]


class DockerPods:
    """The backend of `FakeKubeApi`: one Docker container per pod, one volume per PVC."""

    def __init__(self, engine: DockerEngine, label: str) -> None:
        self.engine = engine
        self.label = label
        self._containers: dict[tuple[str, str], str] = {}  # (ns, pod uid) -> container id
        self._lock = threading.Lock()

    def _volume(self, namespace: str, claim: str) -> str:
        return f"{self.label}-{namespace}-{claim}"

    def start(self, namespace: str, pod: dict[str, Any]) -> None:
        spec = pod["spec"]
        container = spec["containers"][0]
        limits = container["resources"]["limits"]
        sizes = {
            mount["mountPath"]: quantity(
                next(v for v in spec["volumes"] if v["name"] == mount["name"])["emptyDir"][
                    "sizeLimit"
                ]
            )
            for mount in container["volumeMounts"]
            if "emptyDir" in next(v for v in spec["volumes"] if v["name"] == mount["name"])
        }
        claim = next(
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        )
        volume = self._volume(namespace, claim)
        labels = {LABEL: self.label}
        self.engine.ensure_volume(volume, labels, 0)
        home = next(p for p in sizes if p not in ("/tmp", "/dev/shm", TOOLS_MCP))
        settings = ExecutorSettings(
            image_name=container["image"],
            memory_limit_bytes=int(quantity(limits["memory"])),
            cpu_limit=quantity(limits["cpu"]),
            tmp_size_bytes=int(sizes["/tmp"]),
            home_size_bytes=int(sizes[home]),
            shm_size_bytes=int(sizes["/dev/shm"]),
            pids_limit=4096,  # a pod has no pids limit of its own (it is node-wide)
        )
        request = ContainerRequest(
            name=f"{self.label}-{pod['metadata']['name']}-{pod['metadata']['uid'][:8]}",
            volume=volume,
            labels=labels,
            spec=settings,
            tools_path=None,  # baked into the image, as on a cluster
            skills_path=None,
        )
        kwargs = container_kwargs(request)
        if TOOLS_MCP in sizes:  # the emptyDir as a tmpfs the sandbox user owns, as on a node
            kwargs["tmpfs"][TOOLS_MCP] = TOOLS_MCP_TMPFS
        security = container["securityContext"]
        kwargs.update(
            command=container["command"],
            user=f"{security['runAsUser']}:{security['runAsGroup']}",
            init=False,  # the pod's command is PID 1
            environment={e["name"]: e["value"] for e in container.get("env") or []},
            working_dir=container.get("workingDir") or "/",
            read_only=bool(security.get("readOnlyRootFilesystem")),
            hostname=spec.get("hostname") or pod["metadata"]["name"],
            ulimits=[],  # a pod cannot set any: the daemon's defaults apply
        )
        try:
            created = self.engine.client.containers.run(**kwargs)
        except docker.errors.ImageNotFound as exc:
            raise LookupError(f"image {container['image']} not found") from exc
        with self._lock:
            self._containers[(namespace, pod["metadata"]["uid"])] = created.id

    def container_id(self, namespace: str, pod: dict[str, Any]) -> str | None:
        with self._lock:
            return self._containers.get((namespace, pod["metadata"]["uid"]))

    def alive(self, namespace: str, pod: dict[str, Any]) -> bool:
        ref = self.container_id(namespace, pod)
        info = self.engine.inspect(ref) if ref else None
        return info is not None and info.running

    def stop(self, namespace: str, pod: dict[str, Any]) -> None:
        with self._lock:
            ref = self._containers.pop((namespace, pod["metadata"]["uid"]), None)
        if ref is not None:
            self.engine.remove(ref)

    def drop_volume(self, namespace: str, claim: str) -> None:
        self.engine.remove_volume(self._volume(namespace, claim))

    def open_exec(
        self, namespace: str, pod: dict[str, Any], argv: list[str], *, stdin: bool
    ) -> ExecChannel:
        ref = self.container_id(namespace, pod)
        if ref is None:
            raise LookupError("the pod has no container yet")
        return self.engine.open_exec(ref, argv, stdin=stdin)

    def cleanup(self) -> None:
        for info in self.engine.list({LABEL: self.label}):
            self.engine.remove(info.id)
        for volume in self.engine.list_volumes({LABEL: self.label}):
            self.engine.remove_volume(volume.name)
