"""The servers file: the Claude Desktop / Cursor / Claude Code format, expansion, users, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from code_mode import McpConfigError, is_own_endpoint, load_servers, parse_servers
from settings import ConfigError

pytestmark = pytest.mark.code_mode

OWN = ["http://127.0.0.1:7860/mcp/", "https://chat.example.org/mcp/"]


def parse(servers, environ=None, own=OWN):
    return parse_servers(json.dumps({"mcpServers": servers}), Path("s.json"), environ or {}, own)


def test_a_pasted_claude_desktop_block_parses_as_stdio():
    cfg = parse({"time": {"command": "uvx", "args": ["mcp-server-time", "--local-timezone=UTC"]}})
    (server,) = cfg.servers
    assert (server.name, server.transport, server.command) == ("time", "stdio", "uvx")
    assert server.args == ("mcp-server-time", "--local-timezone=UTC")
    assert server.usable
    assert server.users is None
    assert server.allows("anyone")


def test_http_servers_with_and_without_type():
    cfg = parse(
        {
            "a": {"type": "http", "url": "https://a.example/mcp", "headers": {"X-Key": "k1234"}},
            "b": {"url": "https://b.example/mcp"},
            "c": {"type": "stdio", "command": "node", "args": ["c.js"]},
        }
    )
    assert [s.transport for s in cfg.servers] == ["http", "http", "stdio"]
    assert cfg.get("a").headers == {"X-Key": "k1234"}


def test_variables_expand_in_every_field_with_defaults():
    env = {"TOKEN": "tok-abc-123", "BIN": "/opt/bin", "EMPTY": ""}
    cfg = parse(
        {
            "s": {
                "command": "${BIN}/server",
                "args": ["--token=${TOKEN}", "--mode=${MODE:-fast}"],
                "env": {"API_KEY": "${TOKEN}", "LEVEL": "${EMPTY:-info}"},
            },
            "h": {
                "url": "https://${HOST:-api.example}/mcp",
                "headers": {"Authorization": "Bearer ${TOKEN}"},
            },
        },
        env,
    )
    s, h = cfg.servers
    assert s.command == "/opt/bin/server"
    assert s.args == ("--token=tok-abc-123", "--mode=fast")
    assert dict(s.env) == {"API_KEY": "tok-abc-123", "LEVEL": "info"}
    assert h.url == "https://api.example/mcp"
    assert h.headers == {"Authorization": "Bearer tok-abc-123"}
    assert "tok-abc-123" in cfg.secrets()


def test_an_undefined_variable_misconfigures_only_its_server():
    cfg = parse(
        {
            "broken": {
                "url": "https://x.example/mcp",
                "headers": {"Authorization": "Bearer ${NOPE}"},
            },
            "fine": {"command": "true"},
        }
    )
    broken, fine = cfg.servers
    assert "${NOPE} in headers.Authorization is not set" in broken.problem
    assert not broken.usable
    assert fine.usable
    assert not fine.problem


def test_users_limit_a_server_and_disabled_hides_it():
    cfg = parse(
        {
            "mine": {"command": "true", "users": ["alice"]},
            "off": {"command": "true", "disabled": True},
        }
    )
    mine, off = cfg.servers
    assert mine.allows("alice")
    assert not mine.allows("bob")
    assert not off.allows("alice")


def test_a_missing_file_is_no_servers(tmp_path):
    cfg = load_servers(tmp_path / "nope.json", {})
    assert cfg.servers == ()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", ["s.json", "line 1", "not JSON"]),
        ('{"servers": {}}', ["s.json", "mcpServers"]),
        ('{"mcpServers": {"x": []}}', ["'x'", "must be an object"]),
        ('{"mcpServers": {"x": {"command": "a", "args": "b"}}}', ["'x'", "'args'", "list"]),
        ('{"mcpServers": {"x": {"command": "a", "env": {"K": 1}}}}', ["'x'", "env.K", "string"]),
        ('{"mcpServers": {"x": {"url": "https://a", "headers": []}}}', ["'x'", "'headers'"]),
        ('{"mcpServers": {"x": {"command": "a", "users": "alice"}}}', ["'x'", "'users'"]),
        ('{"mcpServers": {"x": {"command": "a", "url": "https://a"}}}', ["'x'", "not both"]),
        ('{"mcpServers": {"x": {}}}', ["'x'", "'command'", "'url'"]),
        ('{"mcpServers": {"x": {"type": "ws", "url": "wss://a"}}}', ["'x'", "'type'", "ws"]),
        ('{"mcpServers": {"x": {"command": "a", "disabled": "yes"}}}', ["'x'", "'disabled'"]),
    ],
)
def test_a_malformed_file_names_the_file_the_server_and_the_field(text, words):
    with pytest.raises(McpConfigError) as caught:
        parse_servers(text, Path("s.json"), {})
    assert isinstance(caught.value, ConfigError)  # the app refuses to start with it
    for word in words:
        assert word in str(caught.value)


def test_sse_is_refused_with_the_way_out():
    with pytest.raises(McpConfigError, match=r"'sse'.*streamable HTTP.*\"type\": \"http\""):
        parse({"old": {"type": "sse", "url": "https://a.example/sse"}})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:7860/mcp/",
        "http://localhost:7860/mcp",
        "http://[::1]:7860/mcp/",
        "http://0.0.0.0:7860/mcp/sub",
        "https://chat.example.org/mcp/",
        "https://chat.example.org:443/mcp",
    ],
)
def test_our_own_endpoint_is_refused(url):
    (server,) = parse({"me": {"url": url}}).servers
    assert "own MCP endpoint" in server.problem
    assert is_own_endpoint(url, OWN)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:7861/mcp/",
        "https://chat.example.org/other/mcp",
        "https://elsewhere.org/mcp",
    ],
)
def test_other_endpoints_are_not_ours(url):
    (server,) = parse({"them": {"url": url}}).servers
    assert not server.problem


def test_a_changed_entry_changes_its_fingerprint_only():
    a1, b1 = parse({"a": {"command": "x"}, "b": {"command": "y"}}).servers
    a2, b2 = parse({"a": {"command": "x", "args": ["--v2"]}, "b": {"command": "y"}}).servers
    assert a1.fingerprint != a2.fingerprint
    assert b1.fingerprint == b2.fingerprint
