"""The hub against real MCP servers: the official reference servers from PyPI (mcp-server-time,
mcp-server-git) and npm (server-everything) over stdio, a fastmcp server over streamable HTTP
behind a bearer token, and our demo servers (docs, crm)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from code_mode import McpHub, McpToolIndex
from settings import PROJECT_ROOT

from .conftest import TOKEN, alive, call, config, ok, remote, start_http_server

pytestmark = pytest.mark.code_mode


def test_mcp_server_time_gives_structured_results(make_hub, time_server):
    hub = make_hub({"time": {"command": time_server}})
    tree = hub.tree("alice")
    assert "def get_current_time(timezone: str) -> dict[str, Any]:" in tree.files["time.py"]
    now = ok(call(hub, "time", "get_current_time", {"timezone": "Europe/Paris"}))
    assert now["timezone"] == "Europe/Paris"
    assert set(now) == {"timezone", "datetime", "day_of_week", "is_dst"}
    converted = ok(
        call(
            hub,
            "time",
            "convert_time",
            {"source_timezone": "Etc/UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
        )
    )
    assert converted["target"]["datetime"].endswith("21:00:00+09:00")
    bad = call(hub, "time", "get_current_time", {"timezone": "Mars/Olympus_Mons"})
    assert not bad.ok
    assert "Mars/Olympus_Mons" in bad.error


def test_server_everything_names_images_structure_progress_and_env(make_hub, everything_server):
    hub = make_hub(
        {
            "everything": {
                "command": everything_server,
                "args": ["stdio"],
                "env": {"DEMO_SETTING": "${DEMO_VALUE:-from-the-default}"},
            }
        }
    )
    stub = hub.tree("alice").files["everything.py"]
    for name in ("get_tiny_image", "get_structured_content", "trigger_long_running_operation"):
        assert f"\ndef {name}(" in stub
    assert "message_type: Literal['error', 'success', 'debug']" in stub  # camelCase argument
    assert "_call('everything', 'get-annotated-message'" in stub  # the original names go out

    image = ok(call(hub, "everything", "get-tiny-image"))
    pictures = [item for item in image if item["type"] == "image"]
    assert pictures[0]["mime_type"] == "image/png"
    assert pictures[0]["data"].startswith("iVBOR")  # base64 of a PNG
    weather = ok(call(hub, "everything", "get-structured-content", {"location": "Chicago"}))
    assert set(weather) == {"temperature", "conditions", "humidity"}
    started = time.monotonic()
    done = ok(
        call(hub, "everything", "trigger-long-running-operation", {"duration": 2, "steps": 4})
    )
    assert time.monotonic() - started >= 1.9
    assert "completed" in done
    env = json.loads(ok(call(hub, "everything", "get-env")))
    assert env["DEMO_SETTING"] == "from-the-default"
    assert "DEMO_VALUE" not in env  # the app's own environment stays out of servers
    links = ok(call(hub, "everything", "get-resource-links", {"count": 2}))
    assert [i["type"] for i in links].count("resource_link") == 2


def test_discovery_lists_documents_and_searches_the_catalog(make_hub, everything_server):
    hub = make_hub({"everything": {"command": everything_server, "args": ["stdio"]}})
    index = McpToolIndex(hub)
    listed = index.list("alice")
    assert len(listed) == 13
    summed = next(f for f in listed if f.name == "get_sum")
    assert summed.module == "tools.mcp.everything"
    assert summed.signature == "get_sum(a: float, b: float) -> Any"
    assert summed.summary == "Returns the sum of two numbers"
    doc = index.docstring("alice", "tools.mcp.everything", "get_sum")
    assert "a (float): First number." in doc
    assert index.docstring("alice", "everything", "get-sum") == doc  # the MCP name works too
    assert "Everything Server" in index.docstring("alice", "tools.mcp.everything", "")
    found = index.search("alice", "image", limit=3)
    assert found[0].name == "get_tiny_image"
    assert index.search("alice", "long running progress", limit=1)[0].name == (
        "trigger_long_running_operation"
    )
    with pytest.raises(FileNotFoundError, match=r"configured: tools\.mcp\.everything"):
        index.docstring("alice", "tools.mcp.nope", "x")


def test_mcp_server_git_reads_a_repository(make_hub, git_server, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "new.txt").write_text("hello")
    hub = make_hub({"git": {"command": git_server, "args": ["--repository", str(repo)]}})
    assert "def git_status(repo_path: str)" in hub.tree("alice").files["git.py"]
    status = ok(call(hub, "git", "git_status", {"repo_path": str(repo)}))
    assert "new.txt" in status


def test_streamable_http_with_a_bearer_header_from_the_environment(make_hub, http_server):
    hub = make_hub({"remote": remote(http_server["port"])}, environ={"REMOTE_TOKEN": TOKEN})
    files = hub.tree("alice").files
    assert "def numbers(count: int = _UNSET) -> list[int]:" in files["remote.py"]
    assert TOKEN not in "".join(files.values())
    assert ok(call(hub, "remote", "whoami"))["client_id"] == "code-mode-test"
    assert ok(call(hub, "remote", "shout", {"text": "hi"})) == "HI"
    assert ok(call(hub, "remote", "numbers", {"count": 4})) == [0, 1, 2, 3]  # unwrapped


def test_a_key_in_the_url_never_reaches_the_log(make_hub, http_server, caplog):
    entry = remote(http_server["port"])
    entry["url"] += "?key=${URL_KEY}"
    hub = make_hub({"remote": entry}, environ={"REMOTE_TOKEN": TOKEN, "URL_KEY": "urlkey-93b1f0"})
    with caplog.at_level("DEBUG"):
        hub.tree("alice")
        assert ok(call(hub, "remote", "shout", {"text": "quiet"})) == "QUIET"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "key=***" in logged  # httpx2 logs each request's URL
    assert "urlkey-93b1f0" not in logged
    assert TOKEN not in logged


def test_a_wrong_token_fails_clearly_without_showing_it(make_hub, http_server):
    hub = make_hub({"remote": remote(http_server["port"])}, environ={"REMOTE_TOKEN": "wrong-0123"})
    files = hub.tree("alice").files
    assert "Unavailable now" in files["remote.py"]
    (status,) = hub.statuses()
    assert status.state == "failed"
    assert "401" in status.last_error or "nauthorized" in status.last_error
    assert "wrong-0123" not in status.last_error + "".join(files.values())


def test_an_http_server_that_goes_away_fails_the_call_and_is_reconnected(make_hub, http_server):
    hub = make_hub({"remote": remote(http_server["port"])}, environ={"REMOTE_TOKEN": TOKEN})
    hub.tree("alice")
    first = ok(call(hub, "remote", "whoami"))["pid"]
    http_server["process"].kill()
    http_server["process"].wait()
    lost = call(hub, "remote", "shout", {"text": "anyone?"})
    assert not lost.ok
    assert "remote" in lost.error
    http_server["process"] = start_http_server(http_server["port"])
    again = ok(call(hub, "remote", "whoami"))["pid"]
    assert again != first


def test_the_catalog_lets_a_restarted_app_build_stubs_without_starting(tmp_path, time_server):
    servers = {"time": {"command": time_server}}
    first = McpHub(config(servers), catalog_path=tmp_path / "catalog.json")
    try:
        tree = first.tree("alice")
        pid = first.statuses()[0].pid
    finally:
        first.close()
    assert not alive(pid)
    second = McpHub(config(servers), catalog_path=tmp_path / "catalog.json", list_wait_s=30)
    try:
        started = time.monotonic()
        again = second.tree("alice")
        assert time.monotonic() - started < 0.5
        assert again.version == tree.version
        assert second.statuses()[0].state == "not started"
        assert ok(call(second, "time", "get_current_time", {"timezone": "Etc/UTC"}))
    finally:
        second.close()


def test_the_demo_copies_a_transcript_from_docs_into_crm(make_hub, tmp_path):
    sample = json.loads((PROJECT_ROOT / "samples" / "mcp_servers.json").read_text())["mcpServers"]
    servers = {}
    for name in ("docs", "crm"):
        entry = dict(sample[name])
        entry["command"] = sys.executable  # .venv/bin/python in the app; this interpreter here
        entry["args"] = [str(PROJECT_ROOT / a) for a in entry["args"]]
        servers[name] = entry
    hub = make_hub(servers, environ={"APP_DATA_DIR": str(tmp_path)})
    hub.tree("alice")  # as the executor does before a command
    documents = ok(call(hub, "docs", "list_documents"))
    meeting = next(d for d in documents if d["id"].startswith("meeting-"))
    text = ok(call(hub, "docs", "get_document", {"document_id": meeting["id"]}))["text"]
    assert 45_000 < len(text) < 60_000
    saved = ok(call(hub, "crm", "update_record", {"record_id": "acme-001", "notes": text}))
    assert saved["notes_chars"] == len(text)
    assert ok(call(hub, "crm", "get_record", {"record_id": "acme-001"}))["notes"] == text
    stored = json.loads(Path(tmp_path / "crm.json").read_text())
    assert stored["acme-001"]["notes"] == text
    hits = ok(call(hub, "docs", "search", {"query": "migration checklist"}))
    assert hits[0]["id"] == meeting["id"]
