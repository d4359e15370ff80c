"""Process hygiene inside the sandbox: finding and killing what a request left behind, the
memory cgroup's OOM counter, and the runner's own limits.

Runs INSIDE the sandbox, as the module `sandbox_processes`. Standard library only.
"""

import contextlib
import os
import resource
import signal
import time


def oom_kills():
    """How many processes the memory cgroup has OOM-killed (v2 or v1 file), 0 if unknown."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


def scan(keep):
    """Pids of the sandbox user's processes except those in `keep`: (alive, zombies).
    Zombies cannot be killed, only collected by their parent."""
    me = os.getuid()
    alive, zombies = [], []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in keep:
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != me:
                continue
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2][1:2]
        except OSError:
            continue
        (zombies if state == b"Z" else alive).append(int(name))
    return alive, zombies


def kill_all_but(keep):
    """SIGKILL every process of the sandbox user but `keep`, then collect our own dead children.
    Returns (converged, touched): converged is False if new processes kept appearing (some
    code, e.g. a thread of the kernel, is still starting them); touched, whether anything was
    killed or found dead (the kernel's dead children need the kernel to reap them)."""
    killed, late, rounds = set(), 0, 0
    deadline = time.monotonic() + 1.0
    zombies = []
    while True:
        alive, zombies = scan(keep)
        if not alive:
            converged = True
            break
        new = [pid for pid in alive if pid not in killed]
        for pid in alive:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        killed.update(alive)
        rounds += 1
        late += 1 if new and rounds > 3 else 0
        if late >= 3 or time.monotonic() > deadline:
            converged = False
            break
        if not new:
            time.sleep(0.001)  # only dying processes are left: give them a moment
    for _ in range(4096):  # reap our own children (bash, the kernel) so no zombies pile up
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    return converged, bool(zombies or killed)


def apply_rlimits():
    """Limits the engine could not set on the container (Kubernetes has no ulimits), given as
    SANDBOX_RLIMITS="fsize=N,nofile=N,core=0": set on this runner, so every command and the
    kernel it starts inherit them (soft = hard, so sandbox code cannot raise them). Absent
    under Docker, whose ulimits already apply to every process."""
    for item in filter(None, os.environ.pop("SANDBOX_RLIMITS", "").split(",")):
        name, _, value = item.partition("=")
        try:
            which = getattr(resource, "RLIMIT_" + name.strip().upper())
            _, hard = resource.getrlimit(which)
            limit = int(value)
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(which, (limit, limit))
        except (AttributeError, ValueError, OSError):
            pass


def not_dumpable():
    """Same-uid sandbox code may kill this process, but not ptrace it or open its pipes."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (ImportError, OSError, AttributeError):
        pass
