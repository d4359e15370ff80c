"""The in-sandbox files helper's path confinement and file semantics, run on a temp dir.

The helper is standard-library Python that runs inside the container as the sandbox user; its
rules are pure logic, so they are checked here with its roots pointed at a temporary folder.
"""

from __future__ import annotations

import io
import json
import os

import pytest

from tests.support.sandbox_modules import load_sandbox_modules


@pytest.fixture
def helper(tmp_path, monkeypatch):
    workspace, tools, staging = tmp_path / "workspace", tmp_path / "tools", tmp_path / "tmp"
    for folder in (workspace, tools, staging):
        folder.mkdir()
    (tools / "t.py").write_text("x = 1\n")
    (tmp_path / "secret.txt").write_text("host secret")
    modules = load_sandbox_modules(monkeypatch, ("paths", "tree", "writes", "files"))
    for module in modules.values():
        if hasattr(module, "WORKSPACE"):
            monkeypatch.setattr(module, "WORKSPACE", str(workspace))
    monkeypatch.setattr(modules["paths"], "READ_ROOTS", (str(workspace), str(tools)))
    monkeypatch.setattr(modules["writes"], "STAGING", str(staging))
    monkeypatch.setattr(modules["tree"], "TREE_ROOT", str(tools / "mcp"))

    def run(op, args, stdin=b""):
        out, err = io.BytesIO(), io.StringIO()
        code = modules["files"].run(op, args, io.BytesIO(stdin), out, err)
        return code, out.getvalue(), json.loads(err.getvalue() or "{}")

    run.workspace, run.tools, run.root = workspace, tools, tmp_path
    return run


def write(helper, path, data: bytes, quota=1 << 20):
    return helper("write", {"path": path, "size": len(data), "quota": quota}, data)


def read(helper, path, offset=0, line_count=None, limit=1 << 20):
    return helper(
        "read", {"path": path, "offset": offset, "line_count": line_count, "limit": limit}
    )


@pytest.mark.parametrize("path", ["../secret.txt", "/etc/passwd", "sub/../../secret.txt"])
def test_paths_outside_the_roots_are_refused(helper, path):
    code, _, meta = read(helper, path)
    assert code == 3
    assert meta["kind"] == "not_allowed"


def test_a_symlink_out_of_the_workspace_is_refused_for_reading_and_writing(helper):
    os.symlink(helper.root / "secret.txt", helper.workspace / "link")
    os.symlink(helper.root, helper.workspace / "dirlink")
    assert read(helper, "link")[2]["kind"] == "not_allowed"
    assert write(helper, "dirlink/new.txt", b"x")[2]["kind"] == "not_allowed"
    assert (helper.root / "secret.txt").read_text() == "host secret"


def test_read_only_roots_can_be_read_but_not_written(helper):
    assert read(helper, str(helper.tools / "t.py"))[1] == b"x = 1\n"
    code, _, meta = write(helper, str(helper.tools / "t.py"), b"evil")
    assert (code, meta["kind"]) == (3, "not_allowed")
    assert "read-only" in meta["message"]


def test_writes_are_exact_atomic_and_create_parents(helper):
    payload = bytes(range(256)) * 100
    code, _, meta = write(helper, "a/b/c.bin", payload)
    assert code == 0
    assert (helper.workspace / "a/b/c.bin").read_bytes() == payload
    assert meta["size"] == len(payload)
    assert [p.name for p in (helper.workspace / "a/b").iterdir()] == ["c.bin"]  # no temp left


def test_a_write_reads_exactly_its_size_so_the_host_need_not_close_stdin(helper):
    args = {"path": "exact.txt", "size": 3, "quota": 1 << 20}
    code, _, _ = helper("write", args, b"abcTRAILING")
    assert code == 0
    assert (helper.workspace / "exact.txt").read_bytes() == b"abc"


def test_the_quota_refuses_a_write_that_would_exceed_it(helper):
    assert write(helper, "one.bin", b"x" * 600, quota=1000)[0] == 0
    code, _, meta = write(helper, "two.bin", b"y" * 600, quota=1000)
    assert (code, meta["kind"]) == (3, "quota")
    assert not (helper.workspace / "two.bin").exists()
    assert write(helper, "one.bin", b"z" * 900, quota=1000)[0] == 0  # replacing counts the old


def test_reads_page_by_lines_and_say_where_to_continue(helper):
    (helper.workspace / "lines.txt").write_text("".join(f"line {i}\n" for i in range(10)))
    code, out, meta = read(helper, "lines.txt", offset=2, line_count=3)
    assert (code, out) == (0, b"line 2\nline 3\nline 4\n")
    assert (meta["next_offset"], meta["truncated"], meta["more"]) == (5, False, True)
    _, out, meta = read(helper, "lines.txt", offset=0, limit=15)
    assert out == b"line 0\nline 1\nl"
    assert (meta["truncated"], meta["next_offset"]) == (True, 2)


def test_directories_and_fifos_are_not_files(helper):
    (helper.workspace / "d").mkdir()
    os.mkfifo(helper.workspace / "pipe")
    assert read(helper, "d")[2]["kind"] == "not_file"
    assert read(helper, "pipe")[2]["kind"] == "not_file"  # and it did not block
    assert read(helper, "missing.txt")[2]["kind"] == "not_found"


def test_listing_is_sorted_and_marks_directories_and_symlinks(helper):
    (helper.workspace / "b.txt").write_text("b")
    (helper.workspace / "a").mkdir()
    os.symlink("b.txt", helper.workspace / "c")
    _code, out, _ = helper("list", {"path": ".", "recursive": False, "max_entries": 100})
    entries = json.loads(out)
    assert [(e["name"], e["is_dir"], e["is_symlink"]) for e in entries] == [
        ("a", True, False),
        ("b.txt", False, False),
        ("c", False, True),
    ]


def test_downloads_stop_at_their_limit_with_a_clear_error(helper):
    (helper.workspace / "big.bin").write_bytes(b"0" * 5000)
    code, _, meta = helper("download", {"path": "big.bin", "limit": 4000})
    assert (code, meta["kind"]) == (3, "too_large")
    code, out, _ = helper("download", {"path": "big.bin", "limit": 5000})
    assert (code, len(out)) == (0, 5000)
