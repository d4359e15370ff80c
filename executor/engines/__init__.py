"""Container platforms the executor can run sandboxes on (see `base.py` for the seam)."""

from __future__ import annotations

from typing import Any

from .base import ContainerInfo, ContainerRequest, Engine, ExecChannel, VolumeInfo

__all__ = [
    "ContainerInfo",
    "ContainerRequest",
    "Engine",
    "ExecChannel",
    "VolumeInfo",
    "make_engine",
]


def make_engine(kind: str, **options: Any) -> Engine:
    """The engine named by EXECUTOR_ENGINE: "docker" (default) or "kubernetes"."""
    if kind in ("", "docker"):
        from .docker import DockerEngine

        return DockerEngine(**options)
    raise ValueError(f"unknown engine {kind!r}: use docker")
