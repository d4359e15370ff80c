"""The generated /tools/mcp files: they compile, import, call with the original names, document
themselves, and never contain anything of the servers' config."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from code_mode import McpHub, McpToolIndex, ServerListing, ToolSpec
from code_mode.stubs import ServerView, render_tree
from executor import tools_index
from tests.conftest import HOSTILE_IDS

from .conftest import config

pytestmark = pytest.mark.code_mode

TRICKY = ServerListing(
    server="google-drive",
    fingerprint="f1",
    title="Google Drive",
    instructions='Use search first. Quotes """ and a backslash \\ must not break the file.',
    tools=(
        ToolSpec(
            name="getDocument",
            description="Fetch one document.\n\nLonger text.",
            input_schema={
                "type": "object",
                "properties": {
                    "documentId": {"type": "string", "description": "The id."},
                    "class": {"type": "string", "enum": ["a", "b"], "default": "a"},
                    "maxBytes": {"type": "integer", "default": 1000},
                    "filter": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
                "required": ["documentId"],
            },
            output_schema={"type": "object", "properties": {"text": {"type": "string"}}},
        ),
        ToolSpec(name="get-document", description='Ends with a quote "'),
        ToolSpec(
            name="list-files",
            description="Files.",
            input_schema={"type": "object", "properties": {"from": {"type": "integer"}}},
            output_schema={
                "type": "object",
                "properties": {"result": {"type": "array", "items": {"type": "string"}}},
                "x-fastmcp-wrap-result": True,
            },
        ),
    ),
)

FAKE_RUNTIME = '''
import json, os

class McpToolError(Exception):
    """Raised for a failed call."""

def call(server, tool, arguments):
    with open(os.environ["CALLS"], "a") as f:
        f.write(json.dumps([server, tool, arguments]) + "\\n")
    return {"server": server}
'''


def write_tree(root: Path, files: dict[str, str]) -> Path:
    package = root / "tools" / "mcp"
    package.mkdir(parents=True)
    (root / "tools" / "__init__.py").write_text("")
    for name, text in files.items():
        (package / name).write_text(text)
    (package / "_runtime.py").write_text(FAKE_RUNTIME)
    return root


def run_in_sandbox_like(root: Path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=root,
        env={"PYTHONPATH": str(root), "CALLS": str(root / "calls.jsonl")},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def tree():
    views = [
        ServerView("google-drive", "google_drive", TRICKY),
        ServerView("github", "github", None, "its process exited (exit code 1)"),
    ]
    files, functions = render_tree("alice", views)
    return files, functions


def test_every_generated_file_compiles(tree):
    files, _ = tree
    assert set(files) == {"__init__.py", "google_drive.py", "github.py"}
    for name, text in files.items():
        compile(text, name, "exec")


def test_stubs_send_the_original_names_and_only_given_arguments(tree, tmp_path):
    root = write_tree(tmp_path, tree[0])
    done = run_in_sandbox_like(
        root,
        """
        import inspect
        from tools.mcp import google_drive
        # "get-document" sorts before "getDocument", so it keeps the plain name
        google_drive.get_document_2(document_id="d1")
        google_drive.get_document_2(document_id="d2", class_="b", max_bytes=5, filter_=None)
        google_drive.get_document()
        google_drive.list_files(from_=3)
        print(inspect.signature(google_drive.get_document_2))
        print(google_drive.__all__)
        """,
    )
    assert done.returncode == 0, done.stderr
    calls = [json.loads(line) for line in (root / "calls.jsonl").read_text().splitlines()]
    assert calls == [
        ["google-drive", "getDocument", {"documentId": "d1"}],
        [
            "google-drive",
            "getDocument",
            {"documentId": "d2", "class": "b", "maxBytes": 5, "filter": None},
        ],
        ["google-drive", "get-document", {}],
        ["google-drive", "list-files", {"from": 3}],
    ]
    signature, names = done.stdout.splitlines()
    assert signature == (
        "(document_id: str, class_: Literal['a', 'b'] = <server default>, "
        "max_bytes: int = <server default>, filter_: Any = <server default>) "
        "-> dict[str, typing.Any]"
    )
    assert names == "['get_document_2', 'get_document', 'list_files']"


def test_unknown_modules_and_unavailable_servers_fail_clearly(tree, tmp_path):
    root = write_tree(tmp_path, tree[0])
    done = run_in_sandbox_like(
        root,
        """
        import tools.mcp
        print(tools.mcp.__all__)
        try:
            from tools.mcp import dropbox
        except ImportError as exc:
            print("import:", exc)
        from tools.mcp import github
        try:
            github.search_code(q="x")
        except tools.mcp.McpToolError as exc:
            print("call:", exc)
        """,
    )
    assert done.returncode == 0, done.stderr
    listed, imported, called = done.stdout.splitlines()
    assert listed == "['McpToolError', 'google_drive', 'github']"
    assert "no server module 'dropbox'" in imported
    assert "google_drive, github" in imported
    assert called == "call: MCP server 'github' is unavailable: its process exited (exit code 1)"


def test_docstrings_say_how_to_call_what_comes_back_and_each_argument(tree):
    files, functions = tree
    module = files["google_drive.py"]
    assert "MCP server 'google-drive' (Google Drive)" in module
    assert "Use search first." in module
    assert 'an image as {"type": "image"' in module  # quotes are escaped only where needed
    assert 'Quotes \\"\\"\\" and a backslash \\\\ must not' in module
    (doc,) = [f.docstring for f in functions["google_drive"] if f.tool == "getDocument"]
    assert "MCP tool 'getDocument' of server 'google-drive'" in doc
    assert "document_id (str): The id. (MCP name: documentId)" in doc
    assert "Optional; the server's default: 1000." in doc
    assert "Type: str or None." in doc  # the Any hint, explained
    assert "dict with keys: text (str, optional)" in doc
    wrapped = next(f for f in functions["google_drive"] if f.name == "list_files")
    assert wrapped.signature == "list_files(from_: int = _UNSET) -> list[str]"
    init = files["__init__.py"]
    assert "google_drive  MCP server 'google-drive': 3 tool(s)" in init
    assert "github        MCP server 'github': unavailable" in init


def test_the_tools_index_reads_the_generated_files(tree, tmp_path):
    root = write_tree(tmp_path, tree[0])
    found = tools_index.list_tools(root / "tools")
    names = {(f.module, f.name) for f in found}
    assert {
        ("tools.mcp.google_drive", "get_document"),
        ("tools.mcp.google_drive", "get_document_2"),
        ("tools.mcp.google_drive", "list_files"),
    } <= names
    doc = tools_index.read_docstring(root / "tools", "tools.mcp.google_drive", "get_document_2")
    assert doc.startswith("Fetch one document.")


def test_no_secret_of_the_config_reaches_any_generated_file(tmp_path):
    secrets = {
        "API_TOKEN": "tok-3f9a1c77e2",
        "HEADER_SECRET": "hdr-88d1e0aa42",
        "ARG_SECRET": "arg-51b2c9d0ee",
        "BIN_DIR": "/opt/secret-bin-7781",
    }
    cfg = config(
        {
            "drive": {
                "command": "${BIN_DIR}/drive-server",
                "args": ["--key=${ARG_SECRET}"],
                "env": {"API_TOKEN": "${API_TOKEN}", "PLAIN": "plain-env-value-99"},
            },
            "remote": {
                "url": "https://api.example.org/mcp",
                "headers": {"Authorization": "Bearer ${HEADER_SECRET}", "X-Org": "org-7c1d3e"},
            },
        },
        secrets,
    )
    hub = McpHub(cfg, catalog_path=tmp_path / "catalog.json")
    try:
        for server in cfg.servers:  # as if listed before (nothing is started)
            echoing = ToolSpec(
                name="whoami",
                description=f"Echoes its config: {secrets['API_TOKEN']} {secrets['HEADER_SECRET']}",
            )
            hub.catalog.put(
                ServerListing(server.name, server.fingerprint, (echoing,), listed_at=1.0)
            )
        files = hub.tree("alice").files
        discovered = McpToolIndex(hub).list("alice")
        docs = [McpToolIndex(hub).docstring("alice", f.module, f.name) for f in discovered]
    finally:
        hub.close()
    everything = "\n".join([*files.values(), *docs, *(f.signature + f.summary for f in discovered)])
    for value in [*secrets.values(), "plain-env-value-99", "org-7c1d3e", "drive-server"]:
        assert value not in everything, value
    assert "***" in files["drive.py"]  # the echoed secret was redacted, not just absent
    assert [s.state for s in hub.statuses()] == ["not started", "not started"]  # no starts


@pytest.mark.parametrize("owner", [*HOSTILE_IDS, 'a"""b', "x\\", "line\nbreak"])
def test_any_user_id_gives_files_that_compile(owner):
    files, _ = render_tree(owner, [ServerView("google-drive", "google_drive", TRICKY)])
    for name, text in files.items():
        compile(text, name, "exec")


def test_what_a_server_says_cannot_break_or_escape_the_files():
    nasty = ServerListing(
        server="odd",
        fingerprint="f",
        title="T\x00itle\ud800",
        instructions="line\x1b[31m red \ud800 \r\n next",
        tools=(
            ToolSpec(
                name="t\ud800-x",
                description='"""); import os; os.system("boom") #\x00',
                input_schema={"type": "object", "properties": {"a\ud800": {"description": "\x07"}}},
            ),
        ),
    )
    files, _ = render_tree("alice", [ServerView("odd", "odd", nasty)])
    text = files["odd.py"]
    text.encode("utf-8")  # writable as a file
    compile(text, "odd.py", "exec")
    module = ast.parse(text)
    calls = [n for n in ast.walk(module) if isinstance(n, ast.Call)]
    names = {ast.unparse(c.func) for c in calls}
    assert "os.system" not in names  # the description stayed inside the docstring
    assert "\x1b" not in text
