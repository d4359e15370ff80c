"""The Docker arguments of a sandbox container and of each exec in it: the hardening, in one place.

Why each setting is there (measured on these machines, see shared notes `sandbox-hardening.md`):
- PID 1 is docker-init (reaps zombies) and the main process runs as root *without capabilities*:
  the sandbox user (uid 1000) can neither kill it nor write to its stdout; every exec runs as 1000.
- No capabilities, no-new-privileges, default seccomp, no network, read-only root filesystem.
- pids/memory (no swap)/CPU limits are per container cgroup; an nproc ulimit would be shared by
  every container of the same uid, so it is not used.
- tmpfs mounts are charged to the memory cgroup: their sizes are kept well below the memory limit.
- /workspace is the session's own named volume, so files survive the container being removed.
- Logs are off (the host disk cannot be filled through the container's stdout); the environment
  is a fixed list, never the host's (an API key on the host must not be visible inside).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docker.types import LogConfig, Mount, Ulimit

from settings import ExecutorSettings

SANDBOX_USER = "1000:1000"
WORKSPACE = "/workspace"
HOME = "/home/coderunner"
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Exactly what a command sees; nothing comes from the host's environment.
SANDBOX_ENVIRONMENT = {
    "PATH": SANDBOX_PATH,
    "HOME": HOME,
    "USER": "coderunner",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONPATH": "/opt/sandbox-python",
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/tmp/matplotlib",
    "TERM": "dumb",
}


def check_limits(spec: ExecutorSettings) -> None:
    """Refuse limits that would brick a session (tmpfs is charged against the memory limit)."""
    tmpfs_total = spec.tmp_size_bytes + spec.home_size_bytes + spec.shm_size_bytes
    if tmpfs_total * 2 > spec.memory_limit_bytes:
        raise ValueError(
            f"tmpfs sizes add up to {tmpfs_total:,} bytes, more than half the memory limit "
            f"({spec.memory_limit_bytes:,}); a full /tmp would leave commands no memory. "
            "Lower EXECUTOR_TMP_SIZE_BYTES or raise EXECUTOR_MEMORY_LIMIT_BYTES."
        )
    if spec.pids_limit < 16 or spec.cpu_limit <= 0 or spec.max_file_bytes <= 0:
        raise ValueError("pids_limit must be >= 16, cpu_limit and max_file_bytes > 0")


def container_kwargs(
    spec: ExecutorSettings,
    *,
    name: str,
    volume: str,
    labels: dict[str, str],
    tools_path: Path | None,
    skills_path: Path | None,
) -> dict[str, Any]:
    """Keyword arguments for `client.containers.run` that create one session's sandbox."""
    mounts = [Mount(target=WORKSPACE, source=volume, type="volume")]
    for target, source in (("/tools", tools_path), ("/skills", skills_path)):
        if source is not None and source.is_dir():
            mounts.append(
                Mount(
                    target=target,
                    source=str(source.resolve()),
                    type="bind",
                    read_only=True,
                )
            )
    kwargs: dict[str, Any] = {
        "image": spec.image_name,
        "command": ["sleep", "infinity"],
        "name": name,
        "hostname": "sandbox",
        "labels": labels,
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
