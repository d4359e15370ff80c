"""read_docstring and list_tools parse source; they never import or run the tools on the host."""

from __future__ import annotations

import pytest

from executor import InvalidArgumentError, SandboxFileNotFoundError
from executor.tools_index import list_tools, read_docstring
from settings import PROJECT_ROOT

TOOLS = PROJECT_ROOT / "tools"


def test_reads_the_example_docstring():
    assert "greeting message" in read_docstring(TOOLS, "tools.example", "greet")
    assert read_docstring(TOOLS, "example", "calculate_sum").startswith("Add up")


def test_lists_functions_with_signatures_and_summaries():
    found = {t.name: t for t in list_tools(TOOLS)}
    assert found["greet"].module == "tools.example"
    assert found["greet"].signature == "greet(name: str) -> str"
    assert found["greet"].summary == "Generate a greeting message."


def test_parsing_never_runs_module_code(tmp_path):
    canary = tmp_path / "ran"
    (tmp_path / "trap.py").write_text(
        f"open({str(canary)!r}, 'w').write('x')\n\ndef f():\n    '''Doc of f.'''\n"
    )
    assert read_docstring(tmp_path, "tools.trap", "f") == "Doc of f."
    assert [t.name for t in list_tools(tmp_path)] == ["f"]
    assert not canary.exists()


@pytest.mark.parametrize(
    "module",
    [
        "os; import os",
        "../etc/passwd",
        "tools..x",
        "tools/example",
        "__import__('os')",
        "",
        "a.b.c.d.e.f.g",
        42,
    ],
)
def test_hostile_module_paths_are_refused(module):
    with pytest.raises(InvalidArgumentError):
        read_docstring(TOOLS, module, "greet")


def test_symlinked_module_is_refused(tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("def f():\n    '''secret'''\n")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "link.py").symlink_to(outside)
    with pytest.raises(InvalidArgumentError, match="symlink"):
        read_docstring(tools, "tools.link", "f")


def test_missing_module_or_function_is_a_not_found_error():
    with pytest.raises(SandboxFileNotFoundError):
        read_docstring(TOOLS, "tools.nope", "greet")
    with pytest.raises(FileNotFoundError, match="no function 'nope'"):
        read_docstring(TOOLS, "tools.example", "nope")
