"""Sandbox-side modules loaded the way the sandbox loads them (from source, as `sandbox_<name>`),
so tests can run their pure logic on the host: host code itself never imports them."""

from __future__ import annotations

import sys
import types

import pytest

from executor.sandbox_side import source


def load_sandbox_modules(
    monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]
) -> dict[str, types.ModuleType]:
    """Load `names` in order into sys.modules (undone at the end of the test)."""
    loaded = {}
    for name in names:
        module = types.ModuleType(f"sandbox_{name}")
        monkeypatch.setitem(sys.modules, module.__name__, module)
        exec(compile(source(name), module.__name__, "exec", dont_inherit=True), module.__dict__)
        loaded[name] = module
    return loaded
