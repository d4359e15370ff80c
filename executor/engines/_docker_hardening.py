"""The Docker arguments of a sandbox container and of each exec in it (the policy is in
`executor/_hardening.py`; this maps it onto Docker's API, in one place)."""

from __future__ import annotations

from typing import Any

from docker.types import LogConfig, Mount, Ulimit

from .._hardening import (
    HOME,
    SANDBOX_ENVIRONMENT,
    SANDBOX_USER,
    TOOLS_MCP,
    TOOLS_MCP_SIZE_BYTES,
    WORKSPACE,
)
from .base import ContainerRequest

# Code mode's modules for the session's user, written by the host over the runner (warm-pool
# members exist before their user is known, so nothing about the user is made at creation).
TOOLS_MCP_TMPFS = f"rw,nosuid,nodev,noexec,size={TOOLS_MCP_SIZE_BYTES},uid=1000,gid=1000,mode=0755"


def container_kwargs(request: ContainerRequest) -> dict[str, Any]:
    """Keyword arguments for `client.containers.run` that create one session's sandbox."""
    spec = request.spec
    mounts = [Mount(target=WORKSPACE, source=request.volume, type="volume")]
    for target, source in (("/tools", request.tools_path), ("/skills", request.skills_path)):
        if source is not None and source.is_dir():
            mounts.append(
                Mount(target=target, source=str(source.resolve()), type="bind", read_only=True)
            )
    kwargs: dict[str, Any] = {
        "image": spec.image_name,
        "command": ["sleep", "infinity"],
        "name": request.name,
        "hostname": "sandbox",
        "labels": request.labels,
        "detach": True,
        "init": True,
        "user": "0:0",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "read_only": True,
        "tmpfs": {
            "/tmp": f"rw,nosuid,nodev,exec,size={spec.tmp_size_bytes},mode=1777",
            HOME: f"rw,nosuid,nodev,size={spec.home_size_bytes},uid=1000,gid=1000,mode=0700",
        },
        "shm_size": spec.shm_size_bytes,
        "network_mode": spec.network_mode,
        "pids_limit": spec.pids_limit,
        "mem_limit": spec.memory_limit_bytes,
        "memswap_limit": spec.memory_limit_bytes,
        "nano_cpus": int(spec.cpu_limit * 1e9),
        "ulimits": [
            Ulimit(name="nofile", soft=spec.nofile_limit, hard=spec.nofile_limit),
            Ulimit(name="core", soft=0, hard=0),
            Ulimit(name="fsize", soft=spec.max_file_bytes, hard=spec.max_file_bytes),
        ],
        "log_config": LogConfig(type="none"),
        "environment": SANDBOX_ENVIRONMENT,
        "working_dir": WORKSPACE,
        "mounts": mounts,
        "restart_policy": {"Name": "no"},
        "oom_score_adj": 500,
        "stdin_open": False,
        "tty": False,
    }
    if request.tools_path is not None and (request.tools_path / "mcp").is_dir():
        kwargs["tmpfs"][TOOLS_MCP] = TOOLS_MCP_TMPFS
    if spec.runtime:
        kwargs["runtime"] = spec.runtime
    return kwargs


def exec_kwargs(*, stdin: bool) -> dict[str, Any]:
    """Keyword arguments for `api.exec_create`: always the sandbox user, in /workspace."""
    return {
        "stdout": True,
        "stderr": True,
        "stdin": stdin,
        "tty": False,
        "user": SANDBOX_USER,
        "workdir": WORKSPACE,
    }
