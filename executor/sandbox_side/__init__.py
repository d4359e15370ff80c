"""Code that runs INSIDE the sandbox, and the one door the host has to it.

Every other module in this folder runs in the sandbox container, as the sandbox user, under
Python 3.11's standard library only, and is never imported by host code: the host reads its
source and sends it (a test enforces both rules; see README.md). Inside, each file is the module
`sandbox_<file>`, loaded by a bootstrap from what the host sends, so they import each other by
those names. This file is host code: it hands out the sources, the bundles and the bootstrap,
and re-exports the protocol's constants (`protocol.py`, constants only, is the one definition
both ends share).
"""

from __future__ import annotations

import functools
import json
import struct
from pathlib import Path
from typing import Any

from . import protocol

__all__ = [
    "BOOTSTRAP",
    "FILES_SCRIPT",
    "RUNNER_MODULES",
    "protocol",
    "runner_bundle",
    "script",
    "source",
]

_HERE = Path(__file__).parent

# The runner's modules, in load order: each imports only the standard library and the ones
# before it (sandbox_config, made by the host, comes first).
RUNNER_MODULES = (
    "protocol",
    "frames",
    "processes",
    "paths",
    "tree",
    "writes",
    "files",
    "kernel_control",
    "hygiene",
    "http_proxy",
    "http_answers",
    "pipes",
    "proxy_pipe",
    "bridge",
    "runner",
)
FILE_HELPER_MODULES = ("paths", "tree", "writes", "files")

# Reads the modules from stdin (a count, then name and source of each, all length-prefixed),
# makes each a module, and runs the last as __main__: `ps` in the sandbox shows a short line.
BOOTSTRAP = (
    "import os,struct,sys,types\n"
    "def r(n):\n"
    " b=b''\n"
    " while len(b)<n:\n"
    "  c=os.read(0,n-len(b))\n"
    "  if not c: raise SystemExit(1)\n"
    "  b+=c\n"
    " return b\n"
    "def s(): return r(struct.unpack('>I',r(4))[0]).decode()\n"
    "n=int(s())\n"
    "for i in range(n):\n"
    " k=s();m=types.ModuleType(k);sys.modules[k]=m\n"
    " if i==n-1: m.__name__='__main__'\n"
    " exec(compile(s(),k,'exec'),m.__dict__)\n"
)


@functools.cache
def source(name: str) -> str:
    """The source of one sandbox-side module (e.g. "runner", "kernel", "mcp_runtime")."""
    return (_HERE / f"{name}.py").read_text()


def _pack(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">I", len(data)) + data


def runner_bundle(config: dict[str, Any], main: str | None = None) -> bytes:
    """What the bootstrap reads: the runner's modules, its configuration (`sandbox_config`) and
    the kernel's source. `main` replaces the runner itself (tests send misbehaving ones)."""
    made = (
        f"import json\nCONFIG = json.loads({json.dumps(config)!r})\n"
        f"KERNEL_SOURCE = {source('kernel')!r}\n"
    )
    modules = [("sandbox_config", made)]
    modules += [(f"sandbox_{name}", source(name)) for name in RUNNER_MODULES[:-1]]
    modules.append(("sandbox_runner", source("runner") if main is None else main))
    parts = [_pack(str(len(modules)))]
    for name, text in modules:
        parts += [_pack(name), _pack(text)]
    return b"".join(parts)


def script(modules: tuple[str, ...], main: str) -> str:
    """One self-contained program for `python3 -I -S -c` (no runner, no stdin for sources): the
    modules as literals, loaded in order, then the statement `main`."""
    sources = [(f"sandbox_{name}", source(name)) for name in modules]
    return (
        "import sys,types\n"
        f"for k,v in {sources!r}:\n"
        " m=types.ModuleType(k);sys.modules[k]=m;exec(compile(v,k,'exec'),m.__dict__)\n"
        f"{main}\n"
    )


# The files helper for plain execs: `python3 -I -S -c FILES_SCRIPT <op> <json args>`.
FILES_SCRIPT = script(FILE_HELPER_MODULES, "sys.exit(sys.modules['sandbox_files'].main())")
