"""The stateful Python kernel: runs INSIDE the sandbox, started on demand by the runner.

`python3 -u -c <this source> CONTROL_FD DONE_FD`. Each cell arrives on CONTROL_FD as a 4-byte
big-endian length and UTF-8 source; it runs in one namespace that persists between cells (like
a notebook: the value of a final expression is printed). Output goes to this process's
stdout/stderr; when the cell ends, "ok" or "error" is written to DONE_FD. Standard library only.

The length REAP (0xFFFFFFFF) is not a cell: the runner sends it after it killed the processes
a cell left behind. Their parent is this kernel, so only it can collect them; it reaps every
exited child and answers "reaped N" (zombies would otherwise fill the pids limit).
"""

import ast
import importlib
import os
import site
import struct
import sys
import traceback

CONTROL, DONE = int(sys.argv[1]), int(sys.argv[2])
REAP = 0xFFFFFFFF

# plt.show() in a cell saves each open figure to /workspace/figures and says where, so the chat
# can show it (matplotlib's backend for this process only; bash commands keep Agg).
SHOW_BACKEND = """
import os
from matplotlib._pylab_helpers import Gcf
from matplotlib.backends.backend_agg import FigureCanvasAgg as FigureCanvas

FOLDER = "/workspace/figures"


def _next_path():
    os.makedirs(FOLDER, exist_ok=True)
    taken = set(os.listdir(FOLDER))
    n = 1
    while f"figure-{n}.png" in taken:
        n += 1
    return os.path.join(FOLDER, f"figure-{n}.png")


def show(*args, **kwargs):
    for manager in Gcf.get_all_fig_managers():
        path = _next_path()
        manager.canvas.figure.savefig(path, dpi=100, bbox_inches="tight")
        print(f"[figure saved: {path}]")
    Gcf.destroy_all()
"""


def install_show_backend():
    folder = f"/tmp/sandbox-kernel-{os.getpid()}"
    try:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "sandbox_show.py"), "w") as f:
            f.write(SHOW_BACKEND)
    except OSError:
        return  # /tmp full: plt.show() stays a no-op, savefig still works
    sys.path.insert(0, folder)
    os.environ["MPLBACKEND"] = "module://sandbox_show"


install_show_backend()
namespace = {"__name__": "__main__", "__builtins__": __builtins__}


def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = os.read(CONTROL, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def report(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if f.filename == "<cell>"]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(user)] if user else []
    lines += traceback.format_exception_only(type(exc), exc)
    sys.stderr.write("".join(lines))


_site_seen = [None]  # the user site's mtime at the last cell


def see_new_packages():
    """Packages `pip install` put in the user site (in /workspace) since the kernel started are
    importable in the next cell, without a restart: the directory joins sys.path once it exists,
    and when it changed the import system forgets what it cached about the folders."""
    user_site = site.getusersitepackages()
    try:
        changed = os.stat(user_site).st_mtime_ns
    except OSError:
        return
    if changed == _site_seen[0]:
        return
    _site_seen[0] = changed
    if user_site not in sys.path:
        before = set(sys.path)
        site.addsitedir(user_site)
        added = [path for path in sys.path if path not in before]
        for path in added:  # ahead of the system's packages, as at a normal start
            sys.path.remove(path)
        system = [i for i, path in enumerate(sys.path) if path.endswith("-packages")]
        at = system[0] if system else len(sys.path)
        sys.path[at:at] = added
    importlib.invalidate_caches()


def run(source):
    see_new_packages()
    try:
        tree = ast.parse(source, "<cell>", "exec")
    except SyntaxError as exc:
        report(exc)
        return False
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    try:
        exec(compile(tree, "<cell>", "exec"), namespace)
        if last is not None:
            value = eval(compile(last, "<cell>", "eval"), namespace)
            if value is not None:
                namespace["_"] = value
                print(repr(value))
        return True
    except BaseException as exc:  # noqa: BLE001 - SystemExit etc. end the cell, not the kernel
        report(exc)
        return False


def reap():
    reaped = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped += 1


while True:
    header = read_exact(4)
    if header is None:
        break
    length = struct.unpack(">I", header)[0]
    if length == REAP:
        os.write(DONE, b"reaped %d\n" % reap())
        continue
    body = read_exact(length)
    if body is None:
        break
    ok = run(body.decode("utf-8", "replace"))
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(DONE, b"ok\n" if ok else b"error\n")
