"""Docstrings and signatures of the modules in `tools/`, read without importing them.

Importing a module runs its code, and the host holds the Docker socket (root-equivalent), so the
tools are parsed with `ast` only. Module paths are checked against a strict pattern and must
resolve to a regular, non-symlinked `.py` file inside the tools directory.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidArgumentError, SandboxFileNotFoundError

_IDENT = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_MODULE_RE = re.compile(rf"^(?:tools\.)?{_IDENT}(?:\.{_IDENT}){{0,4}}$")
_FUNCTION_RE = re.compile(rf"^{_IDENT}(?:\.{_IDENT})?$")
_MAX_SOURCE_BYTES = 1 << 20


@dataclass(frozen=True)
class ToolFunction:
    """One public function of a tools module: how to call it and what it is for."""

    module: str  # importable name inside the sandbox, e.g. "tools.example"
    name: str
    signature: str  # e.g. "greet(name: str) -> str"
    summary: str  # first line of the docstring


def _module_file(tools_dir: Path, module_path: str) -> Path:
    if not isinstance(module_path, str) or not _MODULE_RE.match(module_path):
        raise InvalidArgumentError(
            f"invalid module path {module_path!r}: use dotted Python names such as 'tools.example'"
        )
    parts = module_path.split(".")
    if parts[0] == "tools":
        parts = parts[1:]
    root = tools_dir.resolve()
    candidate = root.joinpath(*parts).with_suffix(".py")
    if not candidate.exists():
        package_init = root.joinpath(*parts, "__init__.py")
        candidate = package_init if package_init.exists() else candidate
    if not candidate.exists():
        raise SandboxFileNotFoundError(f"no tools module {module_path!r} in /tools", module_path)
    walked = root
    for part in candidate.relative_to(root).parts:
        walked = walked / part
        if walked.is_symlink():
            raise InvalidArgumentError(f"tools module {module_path!r} is a symlink; refused")
    if not candidate.resolve().is_relative_to(root) or not candidate.is_file():
        raise InvalidArgumentError(
            f"tools module {module_path!r} is not a file in the tools directory"
        )
    if candidate.stat().st_size > _MAX_SOURCE_BYTES:
        raise InvalidArgumentError(f"tools module {module_path!r} is too large to parse")
    return candidate


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8", errors="replace"), filename=path.name)


def read_docstring(tools_dir: Path, module_path: str, function_name: str) -> str:
    """The docstring of `function_name` (or `Class.method`) in a tools module; '' if none."""
    if not isinstance(function_name, str) or not _FUNCTION_RE.match(function_name):
        raise InvalidArgumentError(f"invalid function name {function_name!r}")
    tree = _parse(_module_file(tools_dir, module_path))
    nodes: list[ast.stmt] = list(tree.body)
    *owners, target = function_name.split(".")
    for owner in owners:
        cls = next((n for n in nodes if isinstance(n, ast.ClassDef) and n.name == owner), None)
        if cls is None:
            break
        nodes = list(cls.body)
    for node in nodes:
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name == target
        ):
            return ast.get_docstring(node) or ""
    raise SandboxFileNotFoundError(
        f"no function {function_name!r} in {module_path!r}; list the module's functions first",
        f"{module_path}.{function_name}",
    )


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    prefix = "async " if isinstance(node, ast.AsyncFunctionDef) else ""
    return f"{prefix}{node.name}({ast.unparse(node.args)}){returns}"


def list_tools(tools_dir: Path) -> list[ToolFunction]:
    """Every public top-level function of every module under the tools directory."""
    root = tools_dir.resolve()
    if not root.is_dir():
        return []
    found: list[ToolFunction] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if any(part.startswith(("_", ".")) for part in relative.parts[:-1]) or path.is_symlink():
            continue
        if relative.name.startswith("_") and relative.name != "__init__.py":
            continue
        parts = relative.with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        module = ".".join(("tools", *parts))
        try:
            tree = _parse(path)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef
            ) and not node.name.startswith("_"):
                doc = ast.get_docstring(node) or ""
                summary = doc.strip().splitlines()[0] if doc.strip() else ""
                found.append(ToolFunction(module, node.name, _signature(node), summary))
    return found
