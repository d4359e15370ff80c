"""MCP server pieces that need no Docker: tokens, handles, result budget, banner, audit tags."""

from __future__ import annotations

import json
import sqlite3

import pytest

from executor.audit import AuditLog, audit_tags
from executor.text import clip
from mcp_server import (
    SandboxStore,
    TokenError,
    TokenStore,
    client_configs,
    ensure_token,
    first_run_banner,
)
from mcp_server._results import RESULT_BUDGET_BYTES, fit, wire_size
from mcp_server.cli import token_main
from mcp_server.http import allowed_hosts_for
from mcp_server.sandboxes import MAX_SANDBOXES_PER_USER, TooManySandboxes, mcp_key
from settings import Settings

pytestmark = pytest.mark.mcp


def test_tokens_are_stored_only_as_hashes_and_revocation_is_immediate(tmp_path):
    store = TokenStore(tmp_path / "mcp.db")
    token = store.create("laptop", "alice")
    assert token.startswith("mce_")
    assert len(token) > 40
    raw = (tmp_path / "mcp.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("mcp.db-*")
    )
    assert token.encode() not in raw
    assert token[4:].encode() not in raw
    assert (tmp_path / "mcp.db").stat().st_mode & 0o077 == 0

    info = store.verify(token)
    assert (info.name, info.user) == ("laptop", "alice")
    assert info.last_used is not None
    assert store.verify(token + "x") is None
    assert store.verify("mce_" + "A" * 43) is None
    assert store.verify("") is None

    other = TokenStore(tmp_path / "mcp.db")  # e.g. the CLI, while the app runs
    assert other.revoke("laptop")
    assert store.verify(token) is None
    assert not other.revoke("laptop")


def test_internal_tokens_are_signed_and_die_with_the_process(tmp_path):
    store = TokenStore(tmp_path / "mcp.db")
    token = store.internal_token("alice")
    assert (store.verify(token).user, store.verify(token).name) == ("alice", "agent")
    payload, _, signature = token.rpartition(".")
    bob = store.internal_token("bob").rpartition(".")[0]
    assert store.verify(f"{bob}.{signature}") is None  # a signature does not move to another user
    assert store.verify(payload + ".") is None
    assert TokenStore(tmp_path / "mcp.db").verify(token) is None  # another process: unknown
    assert store.list() == []  # nothing stored


def test_token_names_are_checked_and_unique(tmp_path):
    store = TokenStore(tmp_path / "mcp.db")
    store.create("ci", "alice")
    with pytest.raises(TokenError, match="exists already"):
        store.create("ci", "bob")
    for bad in ("", "has space", "-dash-first", "x" * 65):
        with pytest.raises(TokenError, match="invalid token name"):
            store.create(bad, "alice")
    assert [(i.name, i.user) for i in store.list()] == [("ci", "alice")]


def test_first_token_is_made_once_per_user(tmp_path):
    store = TokenStore(tmp_path / "mcp.db")
    store.create("local", "someone-else")
    first = ensure_token(store, "local")
    assert first is not None
    assert store.verify(first).name == "local-2"  # the name was taken
    assert ensure_token(store, "local") is None


def test_token_cli_creates_lists_and_revokes(tmp_path, capsys):
    settings = Settings(data_dir=tmp_path)
    assert token_main(["create", "ide", "--user", "bob"], settings) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert TokenStore(tmp_path / "mcp.db").verify(token).user == "bob"
    assert token_main(["list"], settings) == 0
    listed = capsys.readouterr().out
    assert "ide" in listed
    assert "user=bob" in listed
    assert token not in listed
    assert token_main(["revoke", "ide"], settings) == 0
    assert token_main(["revoke", "ide"], settings) == 1


def test_sandbox_records_survive_a_restart_and_belong_to_their_owner(tmp_path):
    store = SandboxStore(tmp_path / "mcp.db")
    made = store.create("alice", "analysis")
    assert made.sandbox_id.startswith("sb-")
    assert made.key == mcp_key("alice", made.sandbox_id)
    reopened = SandboxStore(tmp_path / "mcp.db")
    assert reopened.get("alice", made.sandbox_id).title == "analysis"
    assert reopened.get("bob", made.sandbox_id) is None
    assert reopened.list("bob") == []
    assert mcp_key("alice", "x") != mcp_key("bob", "x")
    assert reopened.delete("alice", made.sandbox_id)
    assert reopened.get("alice", made.sandbox_id) is None


def test_sandboxes_per_user_are_bounded(tmp_path):
    store = SandboxStore(tmp_path / "mcp.db")
    db = sqlite3.connect(tmp_path / "mcp.db")
    db.executemany(
        "INSERT INTO sandboxes (id, owner, title, created) VALUES (?, 'alice', 't', 0)",
        [(f"sb-{i}",) for i in range(MAX_SANDBOXES_PER_USER)],
    )
    db.commit()
    with pytest.raises(TooManySandboxes):
        store.create("alice", "one too many")
    assert store.create("alice", "default sandbox", "default").sandbox_id == "default"
    assert store.create("bob", "fine").sandbox_id.startswith("sb-")


def test_results_fit_the_budget_whatever_the_output():
    nasty = '\x01"\\' * 200_000  # every character needs an escape, twice on the wire
    limits: list[int] = []

    def render(limit):
        limits.append(limit)
        stdout, cut = clip(nasty, limit)
        return {"stdout": stdout, "stderr": clip("é" * 300_000, limit)[0], "cut": cut}

    data = fit(render, 200_000)
    assert wire_size(data) <= RESULT_BUDGET_BYTES
    assert data["cut"] > 0
    assert "characters cut from the middle" in data["stdout"]
    assert limits == sorted(limits, reverse=True)
    assert len(limits) > 1

    small = fit(lambda limit: {"stdout": clip("ok", limit)[0]}, 20_000)
    assert small == {"stdout": "ok"}


def test_allowed_hosts_follow_the_bind_address():
    assert allowed_hosts_for("127.0.0.1") == ["127.0.0.1"]
    assert allowed_hosts_for("0.0.0.0", ["exec.example.org"]) == ["exec.example.org"]
    assert allowed_hosts_for("box.lan") == ["box.lan"]


def test_banner_has_a_ready_snippet_for_each_client():
    url, token = "http://127.0.0.1:7860/mcp/", "mce_secret"
    text = first_run_banner(url, token)
    configs = client_configs(url, token)
    assert set(configs) == {
        "Claude Code",
        "Cursor (~/.cursor/mcp.json)",
        "ADK (Python)",
        "MCP Inspector (CLI)",
    }
    assert configs["Claude Code"] == (
        f'claude mcp add --transport http code-executor {url} --header "Authorization: Bearer '
        f'{token}"'
    )
    cursor = json.loads(configs["Cursor (~/.cursor/mcp.json)"])
    assert cursor["mcpServers"]["code-executor"]["headers"]["Authorization"] == f"Bearer {token}"
    compile(configs["ADK (Python)"], "adk", "exec")
    assert "--method tools/list" in configs["MCP Inspector (CLI)"]
    for snippet in configs.values():
        assert snippet.replace("\n", "\n    ") in text


def test_audit_tags_mark_records_made_inside_the_block(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl", max_bytes=1 << 20, backups=1, secrets=["hunter22"])
    with audit_tags(via="mcp", token="laptop", transport=None, user="forged"):
        log.record('["alice", "c1"]', "execute", "ls", duration_s=0.1)
    log.record('["alice", "c1"]', "execute", "pwd", duration_s=0.1)
    with audit_tags(token="hunter22"):
        log.record("k", "execute", "id", duration_s=0.1)
    log.close()
    first, second, third = (json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines())
    assert (first["via"], first["token"], first["user"]) == ("mcp", "laptop", "alice")
    assert "transport" not in first
    assert "via" not in second
    assert third["token"] == "[REDACTED]"


async def test_tool_schemas_are_listed_once_at_start_for_header_checks(tmp_path):
    """2026-07-28 calls check their Mcp-Param headers against the tool's schema: the server
    answers that from schemas listed at start-up instead of a tools/list per call."""
    from executor import DockerExecutionClient
    from mcp_server import Sandboxes, build_http_app, build_mcp

    executor = DockerExecutionClient(
        app_label="mce-test-schemas", state_dir=tmp_path, audit_log=tmp_path / "audit.jsonl"
    )
    tokens = TokenStore(tmp_path / "mcp.db")
    mcp = build_mcp(executor, tokens, Sandboxes(SandboxStore(tmp_path / "mcp.db"), executor))
    app = build_http_app(mcp)
    lookup = mcp._mcp_server.get_tool_input_schema
    assert lookup("execute_bash") is None  # not started yet: the SDK skips the check
    async with app.router.lifespan_context(app):
        schema = lookup("execute_bash")
        assert schema["required"] == ["command"]
        assert "timeout" in schema["properties"]
        assert lookup("no_such_tool") is None
    await executor.aclose()
