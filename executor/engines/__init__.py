"""Container platforms the executor can run sandboxes on (see `base.py` for the seam)."""

from __future__ import annotations

from typing import Any

from settings import EngineName, ExecutorSettings, check_choice

from .base import ContainerInfo, ContainerRequest, Engine, ExecChannel, VolumeInfo

__all__ = [
    "ContainerInfo",
    "ContainerRequest",
    "Engine",
    "ExecChannel",
    "VolumeInfo",
    "make_engine",
]


def make_engine(
    kind: EngineName, *, spec: ExecutorSettings | None = None, **options: Any
) -> Engine:
    """The engine named by EXECUTOR_ENGINE: "docker" (default) or "kubernetes" (which reads
    its namespace, storage class ... from `spec`). Any other name is a ConfigError."""
    check_choice("EXECUTOR_ENGINE", kind, EngineName)
    if kind == "docker":
        from .docker import DockerEngine

        return DockerEngine(**options)
    from .kubernetes import KubernetesEngine

    return KubernetesEngine(spec, max_connections=options.get("max_connections", 64))
