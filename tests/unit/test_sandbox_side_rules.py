"""The rules of executor/sandbox_side/: standard library only, never imported by the host (but
for the package's door and the protocol's constants), small modules, and a load order that
works exactly as the sandbox's bootstrap runs it."""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import pytest

from executor import sandbox_side
from executor.sandbox_side import RUNNER_MODULES, protocol
from settings import PROJECT_ROOT
from tests.support.sandbox_modules import load_sandbox_modules

SIDE = PROJECT_ROOT / "executor" / "sandbox_side"
INSIDE = sorted(p for p in SIDE.glob("*.py") if p.name != "__init__.py")
HOST_PACKAGES = ("executor", "agent", "mcp_server", "frontend", "code_mode", "tool_surface")


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
    return names


@pytest.mark.parametrize("path", INSIDE, ids=lambda p: p.name)
def test_sandbox_side_modules_use_only_the_standard_library_and_each_other(path):
    ours = {f"sandbox_{p.stem}" for p in INSIDE} | {"sandbox_config"}
    for name in imported(path):
        top = name.split(".")[0]
        assert not name.startswith("."), f"{path.name}: relative import {name}"
        assert top in sys.stdlib_module_names or top in ours, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", INSIDE, ids=lambda p: p.name)
def test_sandbox_side_modules_stay_small(path):
    assert len(path.read_text().splitlines()) <= 300


def test_host_code_reaches_the_sandbox_side_only_through_its_door():
    allowed = {"executor.sandbox_side", "executor.sandbox_side.protocol"}
    for package in HOST_PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            if SIDE in path.parents:
                continue
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            for name in imported(path):
                if name.startswith("."):  # resolve a relative import against the file
                    level = len(name) - len(name.lstrip("."))
                    base = parts[: len(parts) - level]
                    name = ".".join([*base, name.lstrip(".")]).rstrip(".")
                if "sandbox_side" in name:
                    assert name in allowed, f"{path} imports {name}"


def test_the_protocol_module_holds_constants_only():
    tree = ast.parse((SIDE / "protocol.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.Import) and [a.name for a in node.names] == ["struct"]:
            continue
        assert isinstance(node, ast.Assign), ast.dump(node)[:80]


def test_no_module_of_the_executor_is_over_450_lines():
    for path in (PROJECT_ROOT / "executor").rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 450, path


def test_the_runner_modules_load_in_the_bootstraps_order(monkeypatch):
    config = types.ModuleType("sandbox_config")
    config.CONFIG, config.KERNEL_SOURCE = {"proxy": False}, sandbox_side.source("kernel")
    monkeypatch.setitem(sys.modules, "sandbox_config", config)
    modules = load_sandbox_modules(monkeypatch, RUNNER_MODULES)
    assert callable(modules["runner"].main)  # loaded, not run: it is not __main__ here
    assert {"Pipe", "CallPipe"} <= set(vars(modules["pipes"]))
    assert "ProxyPipe" in vars(modules["proxy_pipe"])


def test_the_sandbox_runtime_knows_the_protocols_argument_limit(monkeypatch):
    runtime = load_sandbox_modules(monkeypatch, ("mcp_runtime",))["mcp_runtime"]
    assert runtime._ARGUMENTS_MAX == protocol.CALL_ARGS_MAX


def test_the_files_script_runs_standalone_without_the_runner():
    assert sandbox_side.FILES_SCRIPT.startswith("import sys,types\n")
    assert len(sandbox_side.FILES_SCRIPT.encode()) < 128 * 1024  # one argv element
    compile(sandbox_side.FILES_SCRIPT, "files-script", "exec")
