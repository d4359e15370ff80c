"""Code that runs INSIDE the sandbox (standard library only). Host code never imports these
modules: it reads their source with `source(name)` and sends it to the sandbox, and tests run
that source with `exec` in a namespace of their own."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def source(name: str) -> str:
    """The text of `executor/sandbox_side/<name>.py`, e.g. `source("http_proxy")`."""
    path = _HERE / f"{name}.py"
    if path.parent != _HERE or not path.is_file() or name.startswith("_"):
        raise ValueError(f"no sandbox-side module {name!r}")
    return path.read_text()
