"""The sandbox's hardening policy, independent of the engine that applies it.

Each engine maps this onto its own API in one place (`engines/_docker_hardening.py` for Docker,
`engines/_k8s_objects.py` for Kubernetes). Why each setting is there (measured on these machines,
see the shared notes `sandbox-hardening.md`):
- PID 1 is docker-init (reaps zombies) and the main process runs as root *without capabilities*:
  the sandbox user (uid 1000) can neither kill it nor write to its stdout; every exec runs as 1000.
- No capabilities, no-new-privileges, default seccomp, no network, read-only root filesystem.
- pids/memory (no swap)/CPU limits are per container cgroup; an nproc ulimit would be shared by
  every container of the same uid, so it is not used.
- tmpfs mounts are charged to the memory cgroup: their sizes are kept well below the memory limit
  (the settings refuse a sum above half of it).
- /workspace is the session's own named volume, so files survive the container being removed.
- Logs are off (the host disk cannot be filled through the container's stdout); the environment
  is a fixed list, never the host's (an API key on the host must not be visible inside).
"""

from __future__ import annotations

SANDBOX_USER = "1000:1000"
WORKSPACE = "/workspace"
HOME = "/home/coderunner"
TOOLS_MCP = "/tools/mcp"  # code mode's generated modules: a small tmpfs the host fills
TOOLS_MCP_SIZE_BYTES = 8 << 20
USER_BASE = (
    "/workspace/.local"  # where `pip install` puts packages: they persist with the workspace
)
SANDBOX_PATH = f"{USER_BASE}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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
    # `pip install NAME` just works (through the egress proxy, when EXECUTOR_EGRESS_ALLOW lets
    # it reach an index): as a user install into the workspace, beside the image's packages
    # (Debian's Python refuses system installs, PEP 668), with no cache on the small tmpfs.
    "PYTHONUSERBASE": USER_BASE,
    "PIP_USER": "1",
    "PIP_BREAK_SYSTEM_PACKAGES": "1",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
}
