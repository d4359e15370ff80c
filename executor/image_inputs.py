"""What identifies the sandbox image, without the Docker SDK: the hash of everything under
`docker/` and the labels that carry it.

The executor reads an image's status from its labels through the engine (`Engine.image_labels`),
so this is all it needs; building the image (`executor/image.py`) is a Docker tool of its own,
below the seam with the engines (see `engines/base.py`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from settings import PROJECT_ROOT

DOCKER_DIR = PROJECT_ROOT / "docker"
INPUTS_LABEL = "mcp-code-executor.inputs-hash"
BAKED_LABEL = "mcp-code-executor.baked-hash"
BASE_LABEL = "mcp-code-executor.base-hash"
LOCAL_BASE_REPO = "mcp-code-executor-base"


def inputs_hash(docker_dir: Path = DOCKER_DIR) -> str:
    """Hash of every file under `docker/` (names and bytes): the image's identity."""
    digest = hashlib.sha256()
    for path in sorted(p for p in docker_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(docker_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def status_from_labels(labels: dict[str, str] | None, docker_dir: Path = DOCKER_DIR) -> str:
    """`current`, `stale` (built from other inputs) or `missing` (no labels: no image)."""
    if labels is None:
        return "missing"
    return "current" if labels.get(INPUTS_LABEL, "") == inputs_hash(docker_dir) else "stale"
