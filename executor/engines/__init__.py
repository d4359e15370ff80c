"""Container platforms the executor can run sandboxes on (see `base.py` for the seam)."""

from __future__ import annotations

from typing import Any

from settings import ExecutorSettings

from .base import ContainerInfo, ContainerRequest, Engine, ExecChannel, VolumeInfo

__all__ = [
    "ContainerInfo",
    "ContainerRequest",
    "Engine",
    "ExecChannel",
    "VolumeInfo",
    "make_engine",
]


def make_engine(kind: str, *, spec: ExecutorSettings | None = None, **options: Any) -> Engine:
    """The engine named by EXECUTOR_ENGINE: "docker" (default) or "kubernetes" (which reads
    its namespace, storage class ... from `spec`)."""
    if kind in ("", "docker"):
        from .docker import DockerEngine

        return DockerEngine(**options)
    if kind == "kubernetes":
        from .kubernetes import KubernetesEngine

        return KubernetesEngine(spec, max_connections=options.get("max_connections", 64))
    raise ValueError(f"unknown engine {kind!r}: use docker or kubernetes")
