"""What the UI, `make doctor` and `mcp-code-executor servers list|check` report."""

from __future__ import annotations

import json

import pytest

from code_mode import Catalog, ServerListing, ToolSpec, doctor_checks, status_line, statuses
from frontend import cli
from settings import load_settings

from .conftest import HOSTILE, config

pytestmark = pytest.mark.code_mode


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    servers = {
        "bad": {"command": HOSTILE[0], "args": HOSTILE[1:], "users": ["alice"]},
        "gone": {"command": "/nonexistent/server-${GONE_TOKEN}"},
        "broken": {"url": "https://x.example/mcp", "headers": {"X-Key": "${MISSING}"}},
        "off": {"command": "true", "disabled": True},
    }
    path = tmp_path / "mcp_servers.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    monkeypatch.setenv("APP_MCP_SERVERS_FILE", str(path))
    monkeypatch.setenv("APP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GONE_TOKEN", "gone-secret-4242")
    return tmp_path


def test_settings_read_the_code_mode_variables():
    settings = load_settings(
        {
            "APP_MCP_CALL_TIMEOUT_S": "5",
            "APP_MCP_IDLE_TIMEOUT_S": "60",
            "APP_MCP_SERVERS_FILE": "x.json",
        }
    )
    assert settings.mcp_call_timeout_s == 5.0
    assert settings.mcp_idle_timeout_s == 60.0
    assert settings.mcp_servers_file.name == "x.json"


def test_servers_list_starts_nothing_and_says_what_is_wrong(app_env, capsys):
    assert cli.main(["servers", "list"]) == 1  # "broken" is misconfigured
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0]
        == "bad (tools.mcp.bad, stdio): not started, not listed yet, users: alice, never used"
    )
    assert out[1].startswith("gone (tools.mcp.gone, stdio): not started")
    assert out[2].startswith("broken (tools.mcp.broken, http): misconfigured")
    assert "${MISSING} in headers.X-Key is not set" in out[3]
    assert out[4].startswith("off (tools.mcp.off, stdio): disabled")
    assert not (app_env / "mcp_catalog.json").exists()  # nothing was listed


def test_servers_check_starts_lists_and_stops_each(app_env, capsys):
    assert cli.main(["servers", "check", "bad", "gone"]) == 1
    out = capsys.readouterr().out
    assert "bad (tools.mcp.bad, stdio): stopped, 10 tools" in out
    assert "gone (tools.mcp.gone, stdio): failed, not listed yet" in out
    assert "No such file or directory" in out
    assert "gone-secret-4242" not in out  # the expanded variable is redacted
    assert "server-***" in out
    capsys.readouterr()
    cli.main(["servers", "list", "bad"])  # the listing was kept for the next start
    assert "bad (tools.mcp.bad, stdio): not started, 10 tools" in capsys.readouterr().out


def test_servers_check_refuses_unknown_names(app_env, capsys):
    assert cli.main(["servers", "check", "nope"]) == 1
    assert "no such server(s)" in capsys.readouterr().out


def test_doctor_lines_come_from_config_and_catalog(tmp_path):
    cfg = config(
        {
            "listed": {"command": "true"},
            "new": {"command": "true"},
            "missing": {"command": "/no/such/binary"},
            "broken": {"url": "https://x.example/mcp", "headers": {"X": "${NOPE}"}},
        }
    )
    catalog = Catalog(tmp_path / "c.json")
    listed = cfg.get("listed")
    catalog.put(ServerListing("listed", listed.fingerprint, (ToolSpec(name="t"),), listed_at=1.0))
    checks = doctor_checks(cfg, catalog)
    assert checks[0] == ("ok", "code mode: 4 MCP server(s) in test.json", "")
    assert checks[1] == ("ok", "MCP server listed (stdio): 1 tools listed", "")
    assert checks[2][0:2] == (
        "ok",
        "MCP server new (stdio): not listed yet (`mcp-code-executor servers check` lists it)",
    )
    assert checks[3][0:2] == ("fail", "MCP server missing: command '/no/such/binary' not found")
    assert checks[4][0] == "fail"
    assert "${NOPE}" in checks[4][1]


def test_status_lines_for_the_ui(tmp_path):
    cfg = config({"t": {"command": "true", "users": []}})
    (row,) = statuses(cfg, Catalog(None))
    assert (row.name, row.module, row.transport, row.state, row.tool_count) == (
        "t",
        "t",
        "stdio",
        "not started",
        None,
    )
    assert (
        status_line(row)
        == "t (tools.mcp.t, stdio): not started, not listed yet, users: none, never used"
    )
